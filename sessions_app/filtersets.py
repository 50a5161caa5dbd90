"""FilterSets: they only narrow what the caller may already see (scoping is in views)."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from memoryrelay_site.serializers import is_uuid

from .models import Session, SessionStatus


def filter_by_agent_ref(queryset, name: str, value: str):
    """``agent_id`` may be the agent's UUID or its name; an unknown one matches nothing.
    A join to the rows' own agents, so the lookup stays within the caller's account (a
    subquery on names would read every account's agents of that name)."""
    agent_match = (Q(agent__name=value) | Q(agent_id=value) if is_uuid(value)
                   else Q(agent__name=value))
    return queryset.filter(agent_match, agent__deleted_at__isnull=True)


class SessionFilterSet(django_filters.FilterSet):
    agent_id = django_filters.CharFilter(field_name="agent", method=filter_by_agent_ref)
    project = django_filters.CharFilter(field_name="project")
    status = django_filters.ChoiceFilter(field_name="status", choices=SessionStatus.choices)
    external_id = django_filters.CharFilter(field_name="external_id")

    class Meta:
        model = Session
        fields = ["agent_id", "project", "status", "external_id"]
