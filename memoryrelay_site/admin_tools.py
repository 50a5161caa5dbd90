"""Admin pieces every model admin shares: soft-delete visibility, and actions that run a
service per selected row and report what it refused."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_permission_codename
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseRedirect
from django.utils.text import smart_split
from rest_framework.exceptions import ValidationError as DRFValidationError

from .db import hold_named_live, locked_live
from .errors import Conflict, ServiceError
from .parsers import MAX_DEPTH, check_document


def may_view(request, model) -> bool:
    """Whether the staff member may view ``model``'s rows in the admin (its view or change
    permission, as Django's ``has_view_permission`` reads them): a page of another model
    shows their text only then."""
    opts = model._meta
    return any(request.user.has_perm(f"{opts.app_label}.{get_permission_codename(a, opts)}")
               for a in ("view", "change"))


def unless_may_view(request, model, names, instead: dict) -> list:
    """The field names ``names`` of a page as they are for staff who may view ``model``'s
    rows (:func:`may_view`); for others each named in ``instead`` (one showing those rows'
    text) is its stand-in there (an id, a count), or left out where that is None."""
    if may_view(request, model):
        return list(names)
    shown = [instead.get(name, name) for name in names]
    return [name for i, name in enumerate(shown) if name is not None
            and name not in shown[:i]]


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        return queryset


class FewRelatedFilter(admin.RelatedFieldListFilter):
    """A filter by a related row (an agent, an account) that lists at most ``limit`` of them
    (the first in their admin's order) and the one chosen: one listing every row made the
    page, and its reading, grow with their number (thousands of agents). Any row is still
    chosen by its id in the address (``?agent__id__exact=<id>``)."""

    limit = 20

    def field_choices(self, field, request, model_admin):
        related = field.remote_field.model
        ordering = (self.field_admin_ordering(field, request, model_admin)
                    or related._meta.ordering or ("pk",))
        rows = related._default_manager.order_by(*ordering)
        shown = list(rows[: self.limit + 1])
        if len(shown) > self.limit:
            shown = shown[: self.limit]
            self.title_suffix = f" (the first {self.limit}; any other by its id)"
        try:
            chosen = {field.target_field.to_python(v) for v in self.lookup_val or ()}
        except ValidationError:
            chosen = set()  # the list itself says it is a bad filter
        chosen -= {row.pk for row in shown}
        if chosen:
            shown += list(rows.filter(pk__in=chosen))
        return [(row.pk, str(row)) for row in shown]

    def __init__(self, *args, **kwargs):
        self.title_suffix = ""
        super().__init__(*args, **kwargs)
        self.title += self.title_suffix


class FewValuesFilter(admin.AllValuesFieldListFilter):
    """A filter by the values of a column (a session's project label, a decision's project,
    a pattern's category) that lists at most ``limit`` of them (the first in order) and the
    one chosen: listing every distinct value made the page grow with their number. Any
    value is still chosen in the address (``?project=<label>``)."""

    limit = 20

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        values = list(self.lookup_choices[: self.limit + 1])
        if len(values) > self.limit:
            values = values[: self.limit]
            self.title += f" (the first {self.limit}; any other in the address)"
        listed = {str(value) for value in values if value is not None}
        self.lookup_choices = values + [v for v in self.lookup_val or () if v not in listed]


def service_action(service: Callable, description: str, done: str, *,
                   only: Callable | None = None, otherwise: str = "",
                   permission: str = "change", changed: Callable | None = None,
                   logged: str = "", atomic: bool = True):
    """An admin action calling ``service(row)`` for each selected row (the same service the
    API uses); a ServiceError is shown as a warning naming the row, the others proceed.
    Rows ``only`` refuses, and rows the service left as they were (``changed(result)`` is
    false; by default every row it took is changed), are left alone and counted apart
    (``otherwise`` says what they are), so the count of those done is what was done. Each
    row changed is written to the admin's history as Django's own edits are (a change
    saying ``logged``, or ``done``), in the service's transaction; with ``atomic`` false
    (a service that works before its transaction opens: summarizing, queueing) just after
    it. Offered (and run) only for staff holding ``permission`` on the model
    (``has_<permission>_permission``): Django offers an action that names none to anyone
    who may view the list."""

    def action(model_admin, request, queryset):
        succeeded = left = 0
        for row in queryset:
            if only is not None and not only(row):
                left += 1
                continue
            try:
                with transaction.atomic() if atomic else nullcontext():
                    result = service(row)
                    if changed is not None and not changed(result):
                        left += 1
                        continue
                    model_admin.log_change(request, row, logged or done)
                succeeded += 1
            except ServiceError as exc:
                model_admin.message_user(request, f"{row}: {exc.message}", messages.WARNING)
        if succeeded:
            model_admin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
        if left:
            model_admin.message_user(request, f"Left alone ({otherwise}): {left}.",
                                     messages.INFO)

    action.short_description = description
    action.__name__ = description.lower().replace(" ", "_")
    action.allowed_permissions = (permission,)
    return action


def restore_action(service: Callable):
    """"Restore selected": ``service(row)`` for each selected deleted row (for staff who
    may delete them); one restored meanwhile is left alone."""
    return service_action(service, "Restore selected", "Restored",
                          only=lambda row: row.deleted_at is not None, otherwise="not deleted",
                          permission="soft_delete",
                          changed=lambda restored: restored.deleted_at is None)


def delete_action(service: Callable):
    """"Soft-delete selected": ``service(row)`` for each selected row (for staff who may
    delete them; one deleted meanwhile is the service's NotFound)."""
    return service_action(service, "Soft-delete selected", "Deleted", permission="soft_delete",
                          logged="Soft-deleted")


# --- Manual edits ---------------------------------------------------------------------------


class CheckedJSONField(forms.JSONField):
    """A JSON box read as the API reads a body (memoryrelay_site.parsers): ``NaN`` and
    ``Infinity`` (which no JSON column takes), integers outside 64 bits, lone surrogates
    and nesting deeper than the API allows are a form error, and a document nested deep
    enough to exhaust the parser's stack is one too rather than a server error."""

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise forms.ValidationError(f"nested deeper than {MAX_DEPTH} levels") from None
        try:
            check_document(converted)
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None
        return converted

    def bound_data(self, data, initial):
        """A refused value is shown again as typed (parsed, a lone surrogate could not
        even be written into the page)."""
        if not self.disabled and data is not None:
            try:
                self.to_python(data)
            except forms.ValidationError:
                return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)


class EditForm(forms.ModelForm):
    """A staff edit, checked as the API checks one and written as only what staff changed.

    - Each field carries the value the page was opened with (``show_hidden_initial``), so
      ``changed_data`` is what staff changed, not what differs from the row now: a field the
      API wrote meanwhile is not written back with the page's stale value.
    - A changed field the API also takes is checked by the API's own serializer field
      (``api_input``: shapes, lengths, the 10 KB metadata cap, no U+0000, which PostgreSQL
      cannot store) and written as that field reads it (tags trimmed, without repeats); a
      JSON field may not be emptied where the model needs a value.
    - A row picked by id (an agent, a session) must be a live row of the edited row's own
      account: no edit moves data into another account.
    - The model's constraints are checked with the account and deletion time taken into
      account (they are read-only here, which Django would otherwise leave out), so a name
      another live row holds is a form error, not a failed save.
    """

    api_input = None  # a DRF serializer class, set by EditAdmin.get_form
    api_skip: tuple = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True

    def _get_validation_exclusions(self):
        exclude = super()._get_validation_exclusions()
        names = {f.name for f in self._meta.model._meta.get_fields()}
        return exclude - ({"account", "deleted_at"} & names)

    def clean(self):
        data = super().clean()
        account_id = getattr(self.instance, "account_id", None)
        api_fields = self.api_input().fields if self.api_input else {}
        for name in self.changed_data:
            if name not in data:
                continue  # already refused by its field
            value = data[name]
            model_field = self._meta.model._meta.get_field(name)
            if model_field.is_relation and value is not None:
                if getattr(value, "account_id", account_id) != account_id:
                    self.add_error(name, "belongs to another account")
                elif getattr(value, "deleted_at", None) is not None:
                    self.add_error(name, "is deleted: restore it first")
            elif isinstance(model_field, models.JSONField) and value is None \
                    and not model_field.null:
                self.add_error(name, "Enter JSON: {} or [] for none")
            elif name in api_fields and name not in self.api_skip and value is not None:
                try:  # and written as the API writes it (tags without repeats ...)
                    data[name] = api_fields[name].run_validation(value)
                except DRFValidationError as exc:
                    detail = exc.detail if isinstance(exc.detail, list) else [exc.detail]
                    self.add_error(name, "; ".join(str(d) for d in detail))
        return data


# A search every database runs: each word is one more level of the query (SQLite refuses
# one nested past 1,000 levels) and a word is a LIKE pattern (SQLite refuses one past
# 50,000 bytes; 10,000 characters are at most 40,000 bytes).
SEARCH_MAX_WORDS = 100
SEARCH_MAX_CHARS = 10_000


class BoundedSearch:
    """A model admin mixin: a search (the changelist's box, the autocomplete of a chooser)
    longer than :data:`SEARCH_MAX_WORDS` words or :data:`SEARCH_MAX_CHARS` characters finds
    nothing and says why, rather than failing as a server error on SQLite."""

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > SEARCH_MAX_CHARS or \
                sum(1 for _ in smart_split(search_term)) > SEARCH_MAX_WORDS:
            if getattr(request.resolver_match, "url_name", None) != "autocomplete":
                # (a chooser's answer shows no message: it would wait for the next page)
                self.message_user(request, f"Not searched: search for at most "
                                  f"{SEARCH_MAX_WORDS} words and {SEARCH_MAX_CHARS:,} "
                                  "characters", messages.ERROR)
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


class FilterSafe(BoundedSearch):
    """A model admin mixin (for other packages' admins too): the changelist takes a filter
    value holding U+0000 as a bad filter (PostgreSQL refuses it in a query: a 500), as it
    takes an unknown one, and refuses any filter on ``secret_fields``: the rows a filter
    such as ``?encrypted_key__gte=`` keeps answer a yes or no about the value, so a few
    hundred of them read it whole (Django's own user admin refuses ``password`` lookups the
    same way)."""

    secret_fields: tuple[str, ...] = ()

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split(LOOKUP_SEP, 1)[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_changelist_instance(self, request):
        if any("\x00" in v for values in request.GET.lists() for v in values[1]):
            raise IncorrectLookupParameters("NUL in a filter")
        return super().get_changelist_instance(request)


class FilterSafeAdmin(FilterSafe, admin.ModelAdmin):
    """A model admin with :class:`FilterSafe` lists."""


class EditAdmin(FilterSafeAdmin):
    """A model admin whose edits are checked like the API's and written like its updates.

    The change page of a deleted row is read only (restore it first). A save runs outside
    the admin's usual transaction: the services (and :func:`write_changed`) lock and write
    the row in their own, and compute embeddings before it, so a slow model never holds the
    database's write lock. A save the service refuses (the row was deleted meanwhile, a name
    taken meanwhile ...) changes nothing and is shown as an error, never a server error.
    """

    form = EditForm
    formfield_overrides = {models.JSONField: {"form_class": CheckedJSONField}}
    api_input = None
    api_skip: tuple = ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.api_input, form.api_skip = self.api_input, self.api_skip
        return form

    def has_change_permission(self, request, obj=None):
        if obj is not None and getattr(obj, "deleted_at", None) is not None:
            return False
        return super().has_change_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST" or object_id is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
        except IntegrityError:
            self.message_user(request, "Not saved: another row took one of these values "
                              "meanwhile", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())


def cleared(obj, form) -> list[str]:
    """The fields staff emptied (now None): the update services read None as "leave it"."""
    return [f for f in form.changed_data if getattr(obj, f) is None]


def write_changed(obj, names, missing: ServiceError, *, extra: dict | None = None):
    """Writes the fields ``names`` (those staff changed) and ``extra`` from ``obj`` to the
    live row under its lock; a unique value another row took meanwhile is a Conflict, a row
    deleted meanwhile ``missing``. A row it now names (an agent, a session) is held live
    first, in the order writers lock (an agent before its sessions and memories): one
    deleted since the form checked it is refused, not named by a live row."""
    changed = {f: getattr(obj, f) for f in names}
    changed.update(extra or {})
    if not changed:
        return
    model = type(obj)
    try:
        with transaction.atomic():
            hold_named_live(changed)
            row = locked_live(model, obj.pk, missing)
            for field, value in changed.items():
                setattr(row, field, value)
            touched = [*changed, *(["updated_at"] if hasattr(row, "updated_at") else [])]
            row.save(update_fields=touched)
    except IntegrityError:
        raise Conflict("Another row holds one of these values") from None


class SoftDeleteAdmin(EditAdmin):
    """Shows deleted rows to staff; hard deletes are the purge command's job."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def has_soft_delete_permission(self, request, obj=None):
        """Django's delete permission of the model: who may delete its rows (softly)."""
        return super().has_delete_permission(request, obj)

    @admin.display(boolean=True, description="deleted", ordering="deleted_at")
    def is_deleted(self, obj) -> bool:
        return obj.deleted_at is not None
