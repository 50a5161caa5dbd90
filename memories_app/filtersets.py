from __future__ import annotations

import django_filters

from sessions_app.filtersets import filter_by_agent_ref

from .linked_entities import memories_mentioning
from .models import Memory, MemoryType, Tier


def filter_by_entity(queryset, name: str, value: str):
    return memories_mentioning(queryset, ref=value)


class MemoryFilterSet(django_filters.FilterSet):
    agent_id = django_filters.CharFilter(field_name="agent", method=filter_by_agent_ref)
    session_id = django_filters.UUIDFilter(field_name="session")
    memory_type = django_filters.ChoiceFilter(field_name="memory_type", choices=MemoryType.choices)
    tier = django_filters.ChoiceFilter(field_name="tier", choices=Tier.choices)
    project = django_filters.CharFilter(field_name="project")
    entity = django_filters.CharFilter(
        field_name="entity_links", method=filter_by_entity,
        help_text="Only memories linked to this entity: its id, or its name in any spelling")

    class Meta:
        model = Memory
        fields = ["agent_id", "session_id", "memory_type", "tier", "project", "entity"]
