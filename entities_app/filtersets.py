"""FilterSets: they only narrow what the caller may already see (scoping is in views)."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from rest_framework.exceptions import ValidationError

from .models import Entity
from .names import entity_key, entity_type_of
from .serializers import TYPES_HELP
from .services import entities_of_agent


def type_filter(param: str):
    """A filter method for the type spelled ``param`` (a 422 on ``param`` when unknown)."""

    def filter_by_type(queryset, name: str, value: str):
        canonical = entity_type_of(value)
        if canonical is None:
            raise ValidationError({param: [f"{value!r} is not a valid type: {TYPES_HELP}"]})
        return queryset.filter(**{name: canonical})

    return filter_by_type


def filter_by_name_part(queryset, name: str, value: str):
    """Names containing ``value`` (case aside), or whose key contains its key (so "acme
    corp" finds "ACME, Inc."). A 422 on ``q`` when ``value`` is longer than a name can be
    (SQLite also refuses a LIKE pattern over 50,000 bytes)."""
    longest = Entity._meta.get_field("name").max_length
    if len(value) > longest:
        raise ValidationError({"q": [f"at most {longest} characters (got {len(value)})"]})
    key = entity_key(value)
    match = Q(name__icontains=value)
    return queryset.filter(match | Q(key__contains=key) if key else match)


class EntityFilterSet(django_filters.FilterSet):
    entity_type = django_filters.CharFilter(
        field_name="entity_type", method=type_filter("entity_type"), help_text=TYPES_HELP)
    type = django_filters.CharFilter(field_name="entity_type", method=type_filter("type"),
                                     help_text="Another spelling of entity_type")
    agent_id = django_filters.CharFilter(
        field_name="agent_id", method="filter_by_agent",
        help_text="Agent UUID or name: entities linked to its live memories")
    q = django_filters.CharFilter(field_name="name", method=filter_by_name_part,
                                  help_text="Part of the name (case and spelling aside)")

    class Meta:
        model = Entity
        fields = ["entity_type", "type", "agent_id", "q"]

    def filter_by_agent(self, queryset, name: str, value: str):
        return entities_of_agent(queryset, account=self.request.user, agent_ref=value)
