"""Admin pieces every model admin shares: soft-delete visibility, and actions that run a
service per selected row and report what it refused."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages

from .errors import ServiceError


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


def service_action(service: Callable, description: str, done: str):
    """An admin action calling ``service(row)`` for each selected row (the same service the
    API uses); a ServiceError is shown as a warning naming the row, the others proceed."""

    def action(model_admin, request, queryset):
        succeeded = 0
        for row in queryset:
            try:
                service(row)
                succeeded += 1
            except ServiceError as exc:
                model_admin.message_user(request, f"{row}: {exc.message}", messages.WARNING)
        if succeeded:
            model_admin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)

    action.short_description = description
    action.__name__ = description.lower().replace(" ", "_")
    return action


class SoftDeleteAdmin(admin.ModelAdmin):
    """Shows deleted rows to staff; hard deletes are the purge command's job."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="deleted", ordering="deleted_at")
    def is_deleted(self, obj) -> bool:
        return obj.deleted_at is not None
