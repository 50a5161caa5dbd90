from django.contrib import admin

from memoryrelay_site.admin_tools import (
    DeletedFilter,
    FewRelatedFilter,
    FilterSafeAdmin,
    SoftDeleteAdmin,
    delete_action,
    may_view,
    restore_action,
    service_action,
    unless_may_view,
)

from . import services, tasks
from .models import Memory, WebhookDelivery
from .serializers import MemoryUpdateInput


@admin.register(Memory)
class MemoryAdmin(SoftDeleteAdmin):
    list_display = ["short_content", "agent", "session", "memory_type", "tier", "importance",
                    "visibility", "status", "created_at", "is_deleted"]
    # status: asynchronous writes (POST /v2/memories); "failed" lists those whose task gave
    # up, with its error, and the action below queues them again.
    list_filter = ["status", "memory_type", "tier", "visibility", DeletedFilter,
                   ("agent", FewRelatedFilter)]
    list_select_related = ["agent", "session"]
    search_fields = ["content"]
    raw_id_fields = ["agent", "session"]
    api_input = MemoryUpdateInput
    readonly_fields = ["id", "account", "embedding_model", "created_at", "updated_at",
                       "deleted_at", "status", "status_error", "status_attempts",
                       "status_changed_at"]
    fields = ["id", "account", "agent", "session", "project", "content", "metadata",
              "memory_type", "importance", "tier", "visibility", *readonly_fields[2:]]
    actions = [
        restore_action(lambda m: services.memory_restore(memory=m)),
        delete_action(lambda m: services.memory_delete(memory=m)),
        service_action(lambda m: tasks.memory_embed_retry(memory_ids=[m.pk]),
                       "Retry failed writes", "Queued again",
                       only=lambda m: m.status == "failed" and m.deleted_at is None,
                       otherwise="not failed, or deleted", changed=bool, atomic=False),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).without_vectors()

    @admin.display(description="content")
    def short_content(self, obj) -> str:
        return obj.content[:80] + ("…" if len(obj.content) > 80 else "")

    def has_add_permission(self, request):
        return False  # agents write memories through the API

    def save_model(self, request, obj, form, change):
        """Manual edits go through the update service (which re-embeds changed content
        first), with the agent, session and project label staff gave it: one transaction
        under the row's lock, so a save refused writes none of them."""
        if not form.changed_data:
            return
        changed = {f: getattr(obj, f) for f in form.changed_data if f in services.UPDATABLE}
        placed = {f: getattr(obj, f) for f in form.changed_data
                  if f not in services.UPDATABLE}
        services.memory_update(memory=Memory.objects.without_vectors().get(pk=obj.pk),
                               changes=changed, placed=placed)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(FilterSafeAdmin):
    """Each webhook event of an asynchronous write and how its delivery went (read only:
    the task and the sweep write these)."""

    list_display = ["event", "memory", "status", "attempts", "created_at", "delivered_at",
                    "last_error"]
    list_filter = ["status", "event"]
    list_select_related = ["memory"]
    raw_id_fields = ["memory"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("memory__embedding")

    # The memory (its text) for staff who may view memories; others see its id.
    def get_list_display(self, request):
        return unless_may_view(request, Memory, super().get_list_display(request),
                               {"memory": "memory_ref"})

    def get_fields(self, request, obj=None):
        names = [n for n in super().get_fields(request, obj) if n != "memory_ref"]
        return unless_may_view(request, Memory, names, {"memory": "memory_ref"})

    def get_readonly_fields(self, request, obj=None):
        shown = () if may_view(request, Memory) else ("memory_ref",)
        return [*super().get_readonly_fields(request, obj), *shown]

    @admin.display(description="memory")
    def memory_ref(self, delivery) -> str:
        return str(delivery.memory_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a pending delivery is the outbox: deleting it loses the event
