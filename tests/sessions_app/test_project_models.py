"""The Project model: slugs unique among live projects, the label relation of memories
and sessions, and the relationship constraints."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from memories_app.models import Memory
from sessions_app.models import Project, ProjectRelationship, Session


def register(account, slug="my-api", **extra) -> Project:
    return Project.objects.create(account=account, slug=slug, live_slug=slug, name=slug, **extra)


def test_a_slug_is_unique_among_the_live_projects_of_an_account(account, other_account):
    register(account)
    register(other_account)
    with pytest.raises(IntegrityError), transaction.atomic():
        register(account)


def test_a_deleted_projects_slug_can_be_registered_again(account):
    first = register(account)
    first.mark_deleted(timezone.now())
    first.save()
    assert register(account).pk != first.pk


def test_live_slug_must_equal_the_slug_while_live(account):
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.create(account=account, slug="a", live_slug="b", name="a")


def test_memory_count_counts_the_live_memories_labelled_with_the_slug(account, memory):
    project = register(account, slug="northrelay")
    Memory.objects.filter(pk=memory.pk).update(project="northrelay")
    Memory.objects.create(account=account, agent=memory.agent, content="x", project="northrelay",
                          deleted_at=timezone.now())
    Memory.objects.create(account=account, agent=memory.agent, content="y", project="other")
    assert Project.objects.with_memory_count().get(pk=project.pk).memory_count == 1
    row = Memory.objects.select_related("registered_project").get(pk=memory.pk)
    assert row.registered_project == project


def test_a_deleted_project_is_no_memorys_project(account, memory):
    project = register(account, slug="northrelay")
    Memory.objects.filter(pk=memory.pk).update(project="northrelay")
    project.mark_deleted(timezone.now())
    project.save()
    assert Memory.objects.select_related("registered_project").get(
        pk=memory.pk).registered_project is None
    again = register(account, slug="northrelay")
    assert Memory.objects.get(pk=memory.pk).registered_project == again
    assert Session.objects.filter(registered_project=again).count() == 1


def test_a_relationship_is_unique_per_source_target_and_type_and_never_to_itself(account):
    a, b = register(account, "a"), register(account, "b")
    ProjectRelationship.objects.create(account=account, source=a, target=b,
                                       relationship_type="depends_on")
    ProjectRelationship.objects.create(account=account, source=a, target=b,
                                       relationship_type="shares_schema")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectRelationship.objects.create(account=account, source=a, target=b,
                                           relationship_type="depends_on")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectRelationship.objects.create(account=account, source=a, target=a,
                                           relationship_type="depends_on")


def test_a_serialized_memory_keeps_its_account_and_label(account, memory):
    from django.core import serializers

    Memory.objects.filter(pk=memory.pk).update(project="northrelay")
    register(account, slug="northrelay")
    text = serializers.serialize("json", Memory.objects.filter(pk=memory.pk))
    assert "registered_project" not in text
    loaded = next(serializers.deserialize("json", text)).object
    assert (loaded.account_id, loaded.project) == (account.pk, "northrelay")
