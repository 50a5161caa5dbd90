"""Entity keys, the live-key constraint and the count annotations."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from entities_app.models import Entity, EntityLink
from entities_app.names import entity_key, entity_type_of


@pytest.mark.parametrize("name", ["Acme Corp", "acme-corp", "ACME", "Acme, Inc.", "Acme Co. Ltd",
                                  "Ａｃｍｅ", "acme corporation", "Acme GmbH", "ACME plc"])
def test_spellings_of_a_company_share_one_key(name):
    assert entity_key(name) == "acme"


@pytest.mark.parametrize(("name", "key"), [
    ("Node.js", "nodejs"), ("node js", "nodejs"), ("C++", "cplusplus"), ("C#", "csharp"),
    ("C", "c"), ("Inc", "inc"), ("Co", "co"), ("Straße", "strasse"), ("!!!", "!!!"),
    ("Acme Inc Labs", "acmeinclabs"), ("", ""),
])
def test_keys(name, key):
    assert entity_key(name) == key


def test_keys_are_cut_at_the_column_size():
    assert len(entity_key("+" * 255)) == 255


@pytest.mark.parametrize(("given", "canonical"), [
    ("person", "person"), ("Person", "person"), (" place ", "location"),
    ("location", "location"), ("robot", None), ("", None)])
def test_types(given, canonical):
    assert entity_type_of(given) == canonical


def make(account, name, entity_type="organization", **fields):
    return Entity.objects.create(account=account, name=name, entity_type=entity_type, **fields)


def test_one_live_entity_per_key_and_type(account, other_account):
    first = make(account, "Acme Corp")
    assert first.key == "acme"
    make(account, "ACME", "person")  # another type
    make(other_account, "acme")  # another account
    with pytest.raises(IntegrityError), transaction.atomic():
        make(account, "acme, inc.")
    first.deleted_at = timezone.now()
    first.save(update_fields=["deleted_at"])
    assert make(account, "acme, inc.").key == "acme"  # a deleted one frees its key


def test_a_new_name_saved_renews_the_key(account):
    entity = make(account, "Acme")
    entity.name = "Globex Corporation"
    entity.save(update_fields=["name"])
    assert Entity.objects.get(pk=entity.pk).key == "globex"


def test_counts_live_memories_and_co_occurring_live_entities(account, agent, memory):
    from memories_app.services import memory_create, memory_delete

    acme, bob, carol, gone = (make(account, n) for n in ("Acme", "Bob", "Carol", "Gone"))
    second = memory_create(account=account, agent_ref=agent.name, content="Bob met Carol")
    deleted = memory_create(account=account, agent_ref=agent.name, content="Acme and Carol")
    for entity, mem in [(acme, memory), (bob, memory), (gone, memory), (bob, second),
                        (carol, second), (acme, deleted), (carol, deleted)]:
        EntityLink.objects.create(account=account, entity=entity, memory=mem)
    memory_delete(memory=deleted)
    gone.deleted_at = timezone.now()
    gone.save(update_fields=["deleted_at"])
    counts = {e.name: (e.memory_count, e.relationship_count)
              for e in Entity.objects.live().with_counts()}
    assert counts == {"Acme": (1, 1), "Bob": (2, 2), "Carol": (1, 1)}
