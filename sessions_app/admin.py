from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from memoryrelay_site.admin_tools import (
    DeletedFilter,
    FewRelatedFilter,
    FewValuesFilter,
    SoftDeleteAdmin,
    delete_action,
    restore_action,
    service_action,
    unless_may_view,
    write_changed,
)
from memoryrelay_site.db import locked_live
from memoryrelay_site.errors import NotFound

from . import projects, services
from .models import Agent, Project, ProjectRelationship, Session, SessionStatus
from .serializers import (
    AgentUpdateInput,
    ProjectRelationshipInput,
    ProjectUpdateInput,
    SessionCreateInput,
    SessionEndInput,
)

MEMORIES_SHOWN = 20


class SessionEditInput(SessionCreateInput):
    """What the API checks of a session's fields: those it starts with, and its summary as
    an end gives it."""

    summary = SessionEndInput._declared_fields["summary"]


def end_session(session: Session) -> bool:
    """Ends the session (inside the action's transaction); whether this ended it, as it
    was when the lock the end takes first was held (one ended already stays as it was)."""
    was = locked_live(Session, session.pk, NotFound("Session not found")).status
    services.session_end(session=session)
    return was != SessionStatus.ENDED


@admin.register(Agent)
class AgentAdmin(SoftDeleteAdmin):
    list_display = ["name", "account", "memory_count", "session_count", "last_active_at",
                    "created_at", "is_deleted"]
    list_filter = [DeletedFilter, ("account", FewRelatedFilter)]
    list_select_related = ["account"]
    search_fields = ["name", "description"]
    api_input = AgentUpdateInput
    readonly_fields = ["id", "account", "last_active_at", "created_at", "updated_at",
                       "deleted_at"]
    fields = ["id", "account", "name", "description", "config", "metadata", *readonly_fields[2:]]
    actions = [
        restore_action(lambda a: services.agent_restore(agent=a)),
        delete_action(lambda a: services.agent_delete(agent=a)),
    ]

    def get_queryset(self, request):
        return Agent.objects.with_counts()

    def has_add_permission(self, request):
        return False  # agents are made by the API's first write naming them

    def save_model(self, request, obj, form, change):
        """Through the update service: only what staff changed, a name checked as the
        API checks it (not another agent's, nor another agent's id)."""
        services.agent_update(agent=obj, changes={f: getattr(obj, f)
                                                  for f in form.changed_data})

    @admin.display(ordering="memory_count")
    def memory_count(self, obj) -> int:
        return obj.memory_count

    @admin.display(ordering="session_count")
    def session_count(self, obj) -> int:
        return obj.session_count


@admin.register(Session)
class SessionAdmin(SoftDeleteAdmin):
    list_display = ["__str__", "external_id", "account", "agent", "project", "status",
                    "memory_count", "started_at", "ended_at", "is_deleted"]
    list_filter = ["status", DeletedFilter, ("project", FewValuesFilter),
                   ("agent", FewRelatedFilter)]
    list_select_related = ["account", "agent"]
    search_fields = ["title", "external_id"]
    raw_id_fields = ["agent"]
    api_input = SessionEditInput
    readonly_fields = ["id", "account", "status", "started_at", "ended_at", "created_at",
                       "updated_at", "deleted_at", "summary_method", "memories"]
    fields = ["id", "account", "agent", "external_id", "project", "title", "summary",
              "metadata", *readonly_fields[2:]]
    actions = [
        service_action(end_session, "End selected sessions", "Ended",
                       changed=bool, otherwise="ended already"),
        service_action(lambda s: services.session_summarize(session=s),
                       "Summarize selected sessions", "Summarized", atomic=False),
        restore_action(lambda s: services.session_restore(session=s)),
        delete_action(lambda s: services.session_delete(session=s)),
    ]

    def get_queryset(self, request):
        return Session.objects.with_memory_count()

    def has_add_permission(self, request):
        return False  # sessions start through the API

    def save_model(self, request, obj, form, change):
        """Only what staff changed, under the row's lock; a summary written here is
        ``provided``, as one given at the end is, and one emptied has no method (an end
        with ``auto_summarize`` writes one again)."""
        extra = ({"summary_method": "provided" if obj.summary else ""}
                 if "summary" in form.changed_data else None)
        write_changed(obj, form.changed_data, NotFound("Session not found"), extra=extra)

    def get_fields(self, request, obj=None):
        return self._memories_for(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        return self._memories_for(request, super().get_readonly_fields(request, obj))

    def _memories_for(self, request, names):
        """The memories' text only for staff who may view memories; others see their
        count."""
        return unless_may_view(request, Session._meta.get_field("memories").related_model,
                               names, {"memories": "memory_count"})

    @admin.display(ordering="memory_count")
    def memory_count(self, obj) -> int:
        return obj.memory_count

    @admin.display(description="memories")
    def memories(self, obj) -> str:
        live = obj.memories.filter(deleted_at__isnull=True).select_related("agent")
        rows = live.order_by("created_at", "id")[:MEMORIES_SHOWN]
        listing = format_html_join(
            "", "<li>{} · {} · {}</li>",
            ((m.created_at.strftime("%Y-%m-%d %H:%M"), m.agent.name, m.content[:200])
             for m in rows),
        )
        url = reverse("admin:memories_app_memory_changelist") + f"?session__id__exact={obj.pk}"
        count = live.count()
        return format_html('<ul>{}</ul><a href="{}">View all {} memories</a>', listing, url,
                           count)


@admin.register(Project)
class ProjectAdmin(SoftDeleteAdmin):
    list_display = ["slug", "name", "account", "memory_count", "created_at", "is_deleted"]
    list_filter = [DeletedFilter, ("account", FewRelatedFilter)]
    list_select_related = ["account"]
    search_fields = ["slug", "name", "description", "repo_url"]
    api_input = ProjectUpdateInput
    readonly_fields = ["id", "account", "slug", "created_at", "updated_at", "deleted_at"]
    fields = ["id", "account", "slug", "name", "description", "stack", "repo_url", "metadata",
              *readonly_fields[3:]]
    actions = [
        restore_action(lambda p: projects.project_restore(project=p)),
        delete_action(lambda p: projects.project_delete(project=p)),
    ]

    def get_queryset(self, request):
        return Project.objects.with_memory_count()

    def has_add_permission(self, request):
        return False  # projects are registered through the API

    def save_model(self, request, obj, form, change):
        projects.project_update(project=obj, changes={f: form.cleaned_data[f]
                                                      for f in form.changed_data})

    @admin.display(ordering="memory_count")
    def memory_count(self, obj) -> int:
        return obj.memory_count


@admin.register(ProjectRelationship)
class ProjectRelationshipAdmin(SoftDeleteAdmin):
    list_display = ["source", "relationship_type", "target", "account", "created_at",
                    "is_deleted"]
    list_filter = ["relationship_type", DeletedFilter, ("account", FewRelatedFilter)]
    list_select_related = ["source", "target", "account"]
    search_fields = ["source__slug", "target__slug"]
    api_input = ProjectRelationshipInput
    readonly_fields = ["id", "account", "source", "target", "relationship_type", "created_at",
                       "deleted_at"]
    fields = [*readonly_fields[:5], "metadata", *readonly_fields[5:]]
    actions = [
        restore_action(lambda r: projects.relationship_restore(relationship=r)),
        delete_action(lambda r: projects.relationship_delete(relationship=r)),
    ]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        write_changed(obj, form.changed_data, NotFound("Relationship not found"))
