from __future__ import annotations

import django_filters

from sessions_app.filtersets import filter_by_agent_ref

from .models import Memory, MemoryType, Tier


class MemoryFilterSet(django_filters.FilterSet):
    agent_id = django_filters.CharFilter(field_name="agent", method=filter_by_agent_ref)
    session_id = django_filters.UUIDFilter(field_name="session")
    memory_type = django_filters.ChoiceFilter(field_name="memory_type", choices=MemoryType.choices)
    tier = django_filters.ChoiceFilter(field_name="tier", choices=Tier.choices)
    project = django_filters.CharFilter(field_name="project")

    class Meta:
        model = Memory
        fields = ["agent_id", "session_id", "memory_type", "tier", "project"]
