from django.contrib import admin

from memoryrelay_site.admin_tools import DeletedFilter, SoftDeleteAdmin, service_action

from . import services
from .models import Decision


@admin.register(Decision)
class DecisionAdmin(SoftDeleteAdmin):
    list_display = ["title", "account", "project_slug", "status", "agent", "created_at",
                    "is_deleted"]
    list_filter = ["status", DeletedFilter, "project_slug"]
    list_select_related = ["account", "agent"]
    search_fields = ["title", "rationale", "project_slug"]
    raw_id_fields = ["agent", "session", "superseded_by"]
    readonly_fields = ["id", "account", "agent", "session", "superseded_by", "embedding_model",
                       "created_at", "updated_at", "deleted_at"]
    fields = ["id", "account", "agent", "session", "project_slug", "title", "rationale",
              "alternatives", "status", "superseded_by", "tags", "metadata",
              *readonly_fields[5:]]
    actions = [
        service_action(lambda d: services.decision_restore(decision=d), "Restore selected",
                       "Restored"),
        service_action(lambda d: services.decision_delete(decision=d), "Soft-delete selected",
                       "Deleted"),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).without_vectors()

    def has_add_permission(self, request):
        return False  # agents record decisions through the API

    def save_model(self, request, obj, form, change):
        """Manual edits go through the update service (which re-embeds a changed text)."""
        changed = {f: getattr(obj, f) for f in form.changed_data}
        services.decision_update(decision=Decision.objects.without_vectors().get(pk=obj.pk),
                                 changes=changed)
