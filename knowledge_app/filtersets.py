"""FilterSets: they only narrow what the caller may already see (scoping is in views)."""

from __future__ import annotations

import django_filters
from django.db import connection

from .models import Decision, DecisionStatus, Pattern, PatternScope


def split_tags(value: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))


def filter_by_any_tag(queryset, name: str, value: str):
    """``tags=a,b``: rows whose JSON list ``name`` holds any of the tags (a jsonb ``?|`` on
    PostgreSQL, ``json_each`` on SQLite)."""
    tags = split_tags(value)
    if not tags:
        return queryset
    column = f'"{queryset.model._meta.db_table}"."{name}"'
    if connection.vendor == "postgresql":
        return queryset.extra(where=[f"{column} ?| %s::text[]"], params=[tags])
    marks = ", ".join(["%s"] * len(tags))
    where = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value IN ({marks}))"
    return queryset.extra(where=[where], params=tags)


class DecisionFilterSet(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project_slug")
    status = django_filters.ChoiceFilter(field_name="status", choices=DecisionStatus.choices)
    tags = django_filters.CharFilter(field_name="tags", method=filter_by_any_tag,
                                     help_text="Comma-separated tags: decisions with any of them")

    class Meta:
        model = Decision
        fields = ["project", "status", "tags"]


class PatternFilterSet(django_filters.FilterSet):
    scope = django_filters.ChoiceFilter(field_name="scope", choices=PatternScope.choices)
    category = django_filters.CharFilter(field_name="category")
    tags = django_filters.CharFilter(field_name="tags", method=filter_by_any_tag,
                                     help_text="Comma-separated tags: patterns with any of them")

    class Meta:
        model = Pattern
        fields = ["scope", "category", "tags"]
