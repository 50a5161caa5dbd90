"""Backups keep entities and every memory's links to them (manual and extracted, with
their relevance), so a restore loses no entity, link or merge a user made."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model

from entities_app.models import Entity, EntityLink
from entities_app.services import entity_delete, entity_get_or_create, entity_link
from knowledge_app.backup import ImportRefused
from memories_app.services import memory_create, memory_delete
from memoryrelay_site.services import api_key_create
from tests.conftest import make_client

from .test_backup import by_kind, edit, export, records, run_import, wipe

User = get_user_model()


def links_now() -> set[tuple]:
    return set(EntityLink.objects.values_list(
        "entity_id", "memory_id", "relationship", "relevance_score", "source", "created_at",
        "account__username"))


def entities_now() -> set[tuple]:
    return {(*row[:-1], json.dumps(row[-1], sort_keys=True)) for row in Entity.objects
            .values_list("id", "name", "key", "entity_type", "deleted_at", "created_at",
                         "account__username", "metadata")}


@pytest.fixture
def graph(account, other_account):
    first = memory_create(account=account, agent_ref="scout",
                          content="Alice Chen from Acme Corp moved billing to PostgreSQL")
    second = memory_create(account=account, agent_ref="scout", content="Acme renewed")
    gone = memory_create(account=account, agent_ref="scout", content="old note on Acme")
    acme = entity_get_or_create(account=account, name="Acme Corp",
                                entity_type="organization", metadata={"tier": "gold"})[0]
    alice = entity_get_or_create(account=account, name="Alice Chen", entity_type="person")[0]
    retired = entity_get_or_create(account=account, name="Legacy", entity_type="project")[0]
    entity_link(account=account, entity=acme, memory_id=first.id, relevance_score=0.85,
                source="extracted")
    entity_link(account=account, entity=alice, memory_id=first.id,
                relationship="authored_by")
    entity_link(account=account, entity=acme, memory_id=second.id)
    entity_link(account=account, entity=acme, memory_id=gone.id)
    entity_link(account=account, entity=retired, memory_id=second.id)
    entity_delete(entity=retired)
    memory_delete(memory=gone)
    theirs = memory_create(account=other_account, agent_ref="mallory", content="Globex")
    globex = entity_get_or_create(account=other_account, name="Globex",
                                  entity_type="organization")[0]
    entity_link(account=other_account, entity=globex, memory_id=theirs.id)
    return {"acme": acme, "first": first}


def test_entities_and_links_come_back_exactly_after_a_restore(graph, client):
    entities, links = entities_now(), links_now()
    text = export()
    items = records(text)
    assert items[-1]["counts"]["entity"] == 4
    assert not any("key" in item for item in items if item["kind"] == "entity")
    memory_line = next(i for i in items if i.get("id") == str(graph["first"].id))
    assert sorted(link["relevance_score"] for link in memory_line["entity_links"]) == [0.85, 1.0]
    before = client.get(f"/v1/memories/{graph['first'].id}").json()["entities"]
    assert len(before) == 2
    wipe()
    assert not EntityLink.objects.exists()
    report = run_import(text)
    assert report.created["entity"] == 4
    assert (entities_now(), links_now()) == (entities, links)
    restored = User.objects.get(username="alice")
    client = make_client(api_key_create(user=restored, name="after restore")[1])
    assert client.get(f"/v1/memories/{graph['first'].id}").json()["entities"] == before
    again = run_import(text)  # twice: kept, never duplicated
    assert again.kept["entity"] == 4 and links_now() == links


def test_a_restore_over_the_live_server_keeps_an_entity_deleted_since(graph):
    text = export()
    entity_delete(entity=graph["acme"])
    report = run_import(text)
    assert Entity.objects.get(pk=graph["acme"].pk).deleted_at is not None
    assert report.kept["entity"] == 4


def test_an_overwriting_restore_brings_back_deleted_links_and_entities(graph):
    links = links_now()
    text = export()
    EntityLink.objects.filter(entity=graph["acme"]).delete()
    entity_delete(entity=graph["acme"])
    run_import(text, overwrite=True)
    assert links_now() == links
    assert Entity.objects.get(pk=graph["acme"].pk).deleted_at is None


def test_an_overwriting_restore_takes_back_links_made_since_and_a_plain_one_keeps_them(
        graph, account):
    links = links_now()
    text = export()
    newcomer = entity_get_or_create(account=account, name="Bob Ray", entity_type="person")[0]
    entity_link(account=account, entity=newcomer, memory_id=graph["first"].id)
    run_import(text)  # the memory's copy here is as new: its links stay as they are
    assert len(links_now()) == len(links) + 1
    run_import(text, overwrite=True)
    assert links_now() == links


def _refused(text: str, line_of, change, message: str) -> None:
    lines = text.splitlines()
    number = next(n for n, line in enumerate(lines, 1) if line_of(json.loads(line)))
    lines[number - 1] = change(lines[number - 1])
    with pytest.raises(ImportRefused, match=f"line {number}: .*{message}"):
        run_import("\n".join(lines) + "\n")


def test_a_link_to_an_entity_not_listed_before_is_refused_and_nothing_is_imported(graph):
    text = export()
    wipe()

    def first(item):
        return item.get("id") == str(graph["first"].id)

    def with_links(links):
        return edit(entity_links=links)

    stranger = str(uuid.uuid4())
    _refused(text, first, with_links([{"entity_id": stranger}]), "not an entity of account")
    theirs = next(i["id"] for i in records(text)
                  if i["kind"] == "entity" and i["account"] == "mallory")
    _refused(text, first, with_links([{"entity_id": theirs}]), "not an entity of account")
    acme = str(graph["acme"].id)
    _refused(text, first, with_links([{"entity_id": acme}, {"entity_id": acme}]),
             "linked twice")
    _refused(text, first, with_links([{"entity_id": acme, "relevance_score": 2}]),
             "relevance_score")
    _refused(text, first, with_links([{"entity_id": acme, "source": "guessed"}]), "source")
    _refused(text, first, with_links("acme"), "must be a list")
    assert not Entity.objects.exists() and not EntityLink.objects.exists()


def test_two_live_entities_with_one_name_key_and_type_are_refused(graph):
    text = export()
    wipe()
    _refused(text, lambda i: i["kind"] == "entity" and i["name"] == "Alice Chen",
             edit(name="ACME corp.", entity_type="organization"), "two live entities")


def test_a_version_2_file_without_entities_still_imports(graph):
    items = records(export())
    items[0]["version"] = 2
    items = [i for i in items if i["kind"] != "entity"]
    for item in items:
        item.pop("entity_links", None)
    items[-1]["counts"].pop("entity")
    wipe()
    report = run_import("".join(json.dumps(i) + "\n" for i in items))
    assert report.version == 2 and report.created["memory"] == 4
    assert by_kind()["entity"] == 0 and not Entity.objects.exists()


def test_a_backfill_after_a_restore_does_not_bring_back_entities_deleted_before_it(graph):
    """The memories came back with the entities the file gives them: they count as
    extracted, so a backfill (of memories never processed) leaves them alone instead of
    extracting every one again and making live an entity the user had deleted."""
    from entities_app import pipeline

    retired = Entity.objects.get(name="Legacy")
    text = export()
    wipe()
    run_import(text)
    assert list(pipeline.backfill_candidates()) == []
    assert Entity.objects.get(pk=retired.pk).deleted_at is not None
    status = pipeline.extraction_of(memory=graph["first"])
    assert (status.status, status.method, status.entity_count) == ("done", "import", 2)


def test_a_link_made_since_comes_with_a_newer_file(graph, account):
    """A link moved nothing the import compares: a newer file kept the older copy of the
    memory, and the link was lost on the way."""
    older = export()
    dana = entity_get_or_create(account=account, name="Dana", entity_type="person")[0]
    entity_link(account=account, entity=dana, memory_id=graph["first"].id)
    newer = export()
    run_import(older, overwrite=True)  # another server, holding the older copy
    assert not EntityLink.objects.filter(entity=dana).exists()
    report = run_import(newer)
    assert EntityLink.objects.filter(entity=dana, memory=graph["first"]).exists()
    assert report.updated["memory"] == 1


def test_a_merge_made_since_comes_with_a_newer_file(graph, account):
    """A merge moved links and no memory's ``updated_at``: a newer file kept the older copy
    of each moved memory, linked to the merged-away entity, and the merge was lost."""
    from entities_app.services import entities_merge

    acme = graph["acme"]
    acme_inc = entity_get_or_create(account=account, name="Acmeco",
                                    entity_type="organization")[0]
    only_there = memory_create(account=account, agent_ref="scout", content="Acmeco signed")
    entity_link(account=account, entity=acme_inc, memory_id=only_there.id)
    older = export()
    before = only_there.__class__.objects.get(pk=only_there.pk).updated_at
    kept = entities_merge(entities=[acme, acme_inc])
    assert kept.pk == acme.pk  # the one with the most links
    assert only_there.__class__.objects.get(pk=only_there.pk).updated_at > before
    newer = export()
    run_import(older, overwrite=True)  # another server, holding the older copy
    assert EntityLink.objects.filter(entity=acme_inc, memory=only_there).exists()
    run_import(newer)
    assert Entity.objects.get(pk=acme_inc.pk).deleted_at is not None
    # What the memory shows: its live entities (a plain import keeps links the file lacks;
    # the one left names the merged-away entity, as a deleted entity keeps its links).
    assert list(EntityLink.objects.filter(memory=only_there, entity__deleted_at__isnull=True)
                .values_list("entity_id", flat=True)) == [acme.pk]


def test_a_memorys_entities_of_equal_relevance_come_back_in_the_order_they_were_linked(
        account, client):
    """Ties in relevance are shown oldest link first; the file listed a memory's links by
    entity id, so a restore showed them in another order."""
    memory = memory_create(account=account, agent_ref="scout", content="A planning note")
    entities = [entity_get_or_create(account=account, name=name, entity_type="concept")[0]
                for name in ("Budget", "Roadmap", "Hiring", "Pricing")]
    for entity in sorted(entities, key=lambda e: str(e.id), reverse=True):
        entity_link(account=account, entity=entity, memory_id=memory.id)
    before = client.get(f"/v1/memories/{memory.id}").json()["entities"]
    text = export()
    wipe()
    run_import(text)
    restored = make_client(api_key_create(user=User.objects.get(username="alice"),
                                          name="after restore")[1])
    assert restored.get(f"/v1/memories/{memory.id}").json()["entities"] == before
