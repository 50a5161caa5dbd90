"""FilterSets: they only narrow what the caller may already see (scoping is in views)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from memoryrelay_site.serializers import is_uuid

from .models import Agent, Session, SessionStatus


def filter_by_agent_ref(queryset, name: str, value: str):
    """``agent_id`` may be the agent's UUID or its name; an unknown one matches nothing."""
    agent_match = Q(name=value) | Q(pk=value) if is_uuid(value) else Q(name=value)
    agents = Agent.objects.filter(agent_match, deleted_at__isnull=True)
    return queryset.filter(agent__in=agents)


class SessionFilterSet(django_filters.FilterSet):
    agent_id = django_filters.CharFilter(field_name="agent", method=filter_by_agent_ref)
    project = django_filters.CharFilter(field_name="project")
    status = django_filters.ChoiceFilter(field_name="status", choices=SessionStatus.choices)
    external_id = django_filters.CharFilter(field_name="external_id")

    class Meta:
        model = Session
        fields = ["agent_id", "project", "status", "external_id"]
