from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from memoryrelay_site.admin_tools import (
    DeletedFilter,
    EditForm,
    FilterSafeAdmin,
    SoftDeleteAdmin,
    delete_action,
    restore_action,
    unless_may_view,
)
from memoryrelay_site.errors import ServiceError

from . import services
from .models import Entity, EntityLink, ExtractionKey
from .names import entity_key
from .serializers import EntityUpdateInput


class EntityLinkInline(admin.TabularInline):
    """The memories that mention the entity (links are made through the API or by
    extraction; merging moves them)."""

    model = EntityLink
    fields = ["memory", "memory_content", "relationship", "relevance_score", "source",
              "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-relevance_score", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("memory").defer(
            "memory__embedding")

    def get_fields(self, request, obj=None):
        return unless_may_view(request, EntityLink._meta.get_field("memory").related_model,
                               self.fields, {"memory": "memory_ref", "memory_content": None})

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="memory")
    def memory_ref(self, link) -> str:
        return str(link.memory_id) + (" (deleted)" if link.memory.deleted_at else "")

    @admin.display(description="content")
    def memory_content(self, link) -> str:
        content = link.memory.content
        gone = " (deleted)" if link.memory.deleted_at else ""
        return content[:120] + ("…" if len(content) > 120 else "") + gone

    def has_add_permission(self, request, obj=None):
        return False


class EntityForm(EditForm):
    class Meta:
        model = Entity
        fields = ["name", "entity_type", "metadata"]

    def clean(self):
        """A name and type another live entity of the account has (by key) is refused here,
        as the API's 409 does (the service still settles races)."""
        data = super().clean()
        name, kind = data.get("name"), data.get("entity_type")
        if name and kind and self.instance.deleted_at is None:
            taken = (Entity.objects.live().filter(account=self.instance.account_id,
                                                  key=entity_key(name), entity_type=kind)
                     .exclude(pk=self.instance.pk).first())
            if taken is not None:
                raise forms.ValidationError(
                    f"{taken.name!r} ({kind}) already exists: merge the two instead")
        return data


def merge_selected(model_admin, request, queryset):
    """Merges the selected entities of one account into the one with the most links (the
    oldest among equals): see entities_app.services.entities_merge. The kept entity and
    each merged away (deleted in the same stroke) are written to the admin's history in
    the merge's transaction."""
    selected = list(queryset)
    try:
        with transaction.atomic():
            kept = services.entities_merge(entities=selected)
            at = Entity.objects.values_list("updated_at", flat=True).get(pk=kept.pk)
            merged = list(Entity.objects.filter(pk__in=[e.pk for e in selected],
                                                deleted_at=at).exclude(pk=kept.pk))
            model_admin.log_change(request, kept, "Merged into this entity: " + ", ".join(
                str(e) for e in merged))
            for entity in merged:
                model_admin.log_change(request, entity, f"Merged into {kept} (deleted)")
    except ServiceError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return
    model_admin.message_user(
        request, f"Merged {len(merged)} into {kept} (kept: the most links, then the "
        "oldest); the others are deleted.", messages.SUCCESS)


merge_selected.short_description = "Merge selected entities"
merge_selected.allowed_permissions = ("merge",)


@admin.register(Entity)
class EntityAdmin(SoftDeleteAdmin):
    form = EntityForm
    api_input = EntityUpdateInput
    list_display = ["name", "entity_type", "account", "link_count", "created_at", "is_deleted"]
    list_filter = ["entity_type", DeletedFilter]
    list_select_related = ["account"]
    search_fields = ["name", "key"]
    readonly_fields = ["id", "account", "key", "created_at", "updated_at", "deleted_at"]
    fields = ["id", "account", "name", "key", "entity_type", "metadata", *readonly_fields[3:]]
    inlines = [EntityLinkInline]
    actions = [
        merge_selected,
        restore_action(lambda e: services.entity_restore(entity=e)),
        delete_action(lambda e: services.entity_delete(entity=e)),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            link_count=Count("links", filter=Q(links__memory__deleted_at__isnull=True)))

    def has_merge_permission(self, request) -> bool:
        """A merge changes the kept entity and deletes the others."""
        return (self.has_change_permission(request)
                and self.has_soft_delete_permission(request))

    @admin.display(description="memories", ordering="link_count")
    def link_count(self, obj) -> int:
        return obj.link_count

    def has_add_permission(self, request):
        return False  # agents create entities through the API

    def save_model(self, request, obj, form, change):
        """Manual edits go through the update service."""
        changed = {f: getattr(obj, f) for f in form.changed_data}
        services.entity_update(entity=Entity.objects.get(pk=obj.pk), changes=changed)


@admin.register(ExtractionKey)
class ExtractionKeyAdmin(FilterSafeAdmin):
    """Accounts' own LLM keys: staff see which exist and can switch them off or delete them,
    never the key (only its mask is shown; the encrypted value is not a field here)."""

    list_display = ["provider", "model", "masked_key", "account", "is_active", "last_used_at",
                    "created_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["account__username", "model", "label"]
    secret_fields = ("encrypted_key",)
    fields = ["id", "account", "provider", "label", "model", "base_url", "masked_key",
              "is_active", "last_validated_at", "last_used_at", "created_at", "updated_at"]
    readonly_fields = fields
    actions = ["deactivate"]

    def has_add_permission(self, request) -> bool:
        return False  # a key is given by its account, through the API

    @admin.action(description="Deactivate selected keys", permissions=["change"])
    def deactivate(self, request, queryset):
        """Each key this switched off is written to the admin's history, in the same
        transaction."""
        with transaction.atomic():
            keys = list(ExtractionKey.objects.select_for_update().filter(
                pk__in=list(queryset.values_list("pk", flat=True)), is_active=True))
            count = ExtractionKey.objects.filter(pk__in=[k.pk for k in keys]).update(
                is_active=False, updated_at=timezone.now())
            for key in keys:
                self.log_change(request, key, "Deactivated")
        self.message_user(request, f"Deactivated {count} key(s).", messages.SUCCESS)
