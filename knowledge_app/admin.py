from django.contrib import admin

from memoryrelay_site.admin_tools import (
    DeletedFilter,
    FewValuesFilter,
    SoftDeleteAdmin,
    cleared,
    delete_action,
    restore_action,
)

from . import services
from .models import Decision, Pattern, PatternAdoption
from .serializers import DecisionRecordInput, PatternCreateInput


@admin.register(Decision)
class DecisionAdmin(SoftDeleteAdmin):
    list_display = ["title", "account", "project_slug", "status", "agent", "created_at",
                    "is_deleted"]
    list_filter = ["status", DeletedFilter, ("project_slug", FewValuesFilter)]
    list_select_related = ["account", "agent"]
    search_fields = ["title", "rationale", "project_slug"]
    raw_id_fields = ["agent", "session", "superseded_by"]
    api_input, api_skip = DecisionRecordInput, ("status",)  # reverted, superseded: here
    readonly_fields = ["id", "account", "agent", "session", "superseded_by", "embedding_model",
                       "created_at", "updated_at", "deleted_at"]
    fields = ["id", "account", "agent", "session", "project_slug", "title", "rationale",
              "alternatives", "status", "superseded_by", "tags", "metadata",
              *readonly_fields[5:]]
    actions = [
        restore_action(lambda d: services.decision_restore(decision=d)),
        delete_action(lambda d: services.decision_delete(decision=d)),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).without_vectors()

    def has_add_permission(self, request):
        return False  # agents record decisions through the API

    def save_model(self, request, obj, form, change):
        """Manual edits go through the update service (which re-embeds a changed text); a
        field staff emptied (the service reads None as "unchanged") is emptied in the same
        write, so a save the service refuses empties nothing either."""
        changed = {f: getattr(obj, f) for f in form.changed_data}
        services.decision_update(decision=Decision.objects.without_vectors().get(pk=obj.pk),
                                 changes=changed, cleared=cleared(obj, form))


class AdoptionInline(admin.TabularInline):
    model = PatternAdoption
    fields = ["project", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # projects adopt through the API

    def get_queryset(self, request):
        # Each row shows its project and names its pattern: read with the adoptions (the
        # pattern without its vector), not two queries a row.
        return (super().get_queryset(request).select_related("project", "pattern")
                .defer("pattern__embedding"))


@admin.register(Pattern)
class PatternAdmin(SoftDeleteAdmin):
    list_display = ["title", "account", "scope", "category", "source_project_slug",
                    "adoption_count", "created_at", "is_deleted"]
    list_filter = ["scope", DeletedFilter, ("category", FewValuesFilter)]
    list_select_related = ["account"]
    search_fields = ["title", "description", "category", "source_project_slug"]
    api_input = PatternCreateInput
    readonly_fields = ["id", "account", "source_project", "source_project_slug",
                       "embedding_model", "created_at", "updated_at", "deleted_at"]
    fields = ["id", "account", "title", "description", "scope", "category", "tags",
              "example_code", "metadata", *readonly_fields[2:]]
    inlines = [AdoptionInline]
    actions = [
        restore_action(lambda p: services.pattern_restore(pattern=p)),
        delete_action(lambda p: services.pattern_delete(pattern=p)),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).without_vectors().with_adoption_count()

    @admin.display(ordering="adoption_count")
    def adoption_count(self, obj) -> int:
        return obj.adoption_count

    def has_add_permission(self, request):
        return False  # agents create patterns through the API

    def save_model(self, request, obj, form, change):
        """Manual edits go through the update service (which re-embeds a changed text); a
        field staff emptied is emptied in the same write."""
        changed = {f: getattr(obj, f) for f in form.changed_data}
        services.pattern_update(pattern=Pattern.objects.without_vectors().get(pk=obj.pk),
                                changes=changed, cleared=cleared(obj, form))
