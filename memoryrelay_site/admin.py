from functools import wraps

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from .admin_tools import FilterSafe, FilterSafeAdmin
from .models import SCOPES, ApiKey, all_scopes
from .services import api_key_create, api_key_revoke

# Editable when adding and later.
SETTINGS_FIELDS = ["scopes", "expires_at", "rate_limit_per_minute"]


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES], initial=all_scopes,
        widget=forms.CheckboxSelectMultiple,
        help_text="admin allows everything, API keys and account settings included")

    class Meta:
        model = ApiKey
        fields = ["user", "name", *SETTINGS_FIELDS]

    def __init__(self, *args, **kwargs):
        """Each field carries the value the page was opened with, so what is saved is what
        staff changed on this page, not all that differs from the key now: a page opened
        before the key's scopes were narrowed elsewhere does not widen them again. (A post
        without those values, not from the page, is compared with the key as it is.)"""
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            return
        for name, field in self.fields.items():
            field.show_hidden_initial = not self.is_bound or not field.hidden_widget() \
                .value_omitted_from_data(self.data, self.files, self.add_initial_prefix(name))

    def clean_scopes(self):
        return [scope for scope in SCOPES if scope in self.cleaned_data["scopes"]]


@admin.register(ApiKey)
class ApiKeyAdmin(FilterSafeAdmin):
    form = ApiKeyForm
    secret_fields = ("key_hash",)
    list_display = ["prefix", "name", "user", "scopes", "created_at", "last_used_at",
                    "expires_at", "rate_limit_per_minute", "is_active"]
    list_filter = ["revoked_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["prefix", "name", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    created_template = "admin/memoryrelay_site/apikey/created.html"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", *SETTINGS_FIELDS]
        return ["user", "name", *SETTINGS_FIELDS, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ["user", *self.readonly_fields]

    @admin.display(boolean=True, description="active")
    def is_active(self, obj) -> bool:
        return obj.is_active

    def has_delete_permission(self, request, obj=None):
        """A key is revoked, never deleted (as the API's DELETE revokes): its row keeps who
        made it, when, and when it was last used."""
        return False

    def save_model(self, request, obj, form, change):
        if change:  # only what the form changed: never writes back a stale revoked_at
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
            return
        key, raw = api_key_create(
            user=obj.user, name=obj.name, expires_at=obj.expires_at,
            rate_limit_per_minute=obj.rate_limit_per_minute, scopes=obj.scopes)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = (
            key.pk, key.prefix, key.key_hash, key.created_at)
        obj._state.adding, obj._state.db = False, key._state.db
        request._created_api_key = raw  # shown once by response_add, never in a message

    def response_add(self, request, obj, post_url_continue=None):
        """The raw key is shown once, on this response's page: not in a ``messages`` cookie
        (signed, not encrypted) and not in any cache."""
        raw = getattr(request, "_created_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "opts": self.opts,
                   "title": "API key created", "key": obj, "raw_key": raw}
        response = TemplateResponse(request, self.created_template, context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        """Revokes each key (a revoked key keeps its first revoked_at); each this revoked
        is written to the admin's history in its revoke's transaction."""
        revoked = left = 0
        for key in queryset:
            with transaction.atomic():
                # Under the lock the revoke takes first: whether this revokes the key.
                was = ApiKey.objects.select_for_update().filter(pk=key.pk).values_list(
                    "revoked_at", flat=True).first()
                api_key_revoke(key=key)
                if was is not None:
                    left += 1
                    continue
                self.log_change(request, key, "Revoked")
            revoked += 1
        if revoked:
            self.message_user(request, f"Revoked {revoked} keys.", messages.SUCCESS)
        if left:
            self.message_user(request, f"Left alone (already revoked): {left}.",
                              messages.INFO)


# The admins other packages register (accounts, groups, the database task backend's
# results), their lists as safe as every other.
admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.unregister(DBTaskResult)


@admin.register(User)
class AccountAdmin(FilterSafe, UserAdmin):
    pass


@admin.register(Group)
class StaffGroupAdmin(FilterSafe, GroupAdmin):
    pass


@admin.register(DBTaskResult)
class TaskResultAdmin(FilterSafe, DBTaskResultAdmin):
    pass


# RQ's dashboard (django-rq): its queues and jobs, with "empty queue", delete and requeue.
# django-rq lets any active staff account in, whatever its permissions; it is for superusers
# here. Its JSON stats and metrics keep their own token check. It has no rows: an object's
# pages (/dashboard/<id>/change/, a server error before) are a 404.
RQ_TOKEN_VIEWS = {"django_rq_home_json", "django_rq_metrics"}


def superusers_only(view):
    @wraps(view)
    def checked(request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)

    @admin.register(Dashboard)
    class RQDashboardAdmin(QueueAdmin):
        def get_urls(self):
            urls = super().get_urls()
            for url in urls:
                if isinstance(url, URLPattern) and url.name not in RQ_TOKEN_VIEWS:
                    url.callback = superusers_only(url.callback)
            return urls

        def has_module_permission(self, request):
            return request.user.is_active and request.user.is_superuser

        def has_view_permission(self, request, obj=None):
            return self.has_module_permission(request)

        def has_change_permission(self, request, obj=None):
            return self.has_module_permission(request)

        def has_delete_permission(self, request, obj=None):
            return False

        def change_view(self, request, object_id, form_url="", extra_context=None):
            raise Http404

        def history_view(self, request, object_id, extra_context=None):
            raise Http404

        def delete_view(self, request, object_id, extra_context=None):
            raise Http404
