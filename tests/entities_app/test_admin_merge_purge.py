"""The entity admin (its memories, edits, merge action), the merge service, and the purge
of deleted entities with their links."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from entities_app import services
from entities_app.models import Entity, EntityLink
from memoryrelay_site.errors import Invalid
from tests.sessions_app.test_admin import act, texts


def new_memory(account, agent, content):
    from memories_app.services import memory_create

    return memory_create(account=account, agent_ref=agent.name, content=content)


def make(account, name, entity_type="organization", **fields):
    return Entity.objects.create(account=account, name=name, entity_type=entity_type, **fields)


def tie(entity, memory, score=1.0):
    return EntityLink.objects.create(account=entity.account, entity=entity, memory=memory,
                                     relevance_score=score)


@pytest.fixture
def memories(account, agent):
    return [new_memory(account, agent, f"Acme memory {i}") for i in range(4)]


# --- merge --------------------------------------------------------------------------------


def test_merge_keeps_the_entity_with_most_links_and_moves_the_others(account, memories):
    old = make(account, "Acme Corporation", created_at=timezone.now() - timedelta(days=3))
    busy = make(account, "ACME Labs", "concept")
    spare = make(account, "Acme Widgets", "product")
    tie(old, memories[0], 0.5)
    tie(busy, memories[0], 0.8)  # same memory: the higher relevance stays
    tie(busy, memories[1], 0.3)
    tie(busy, memories[2])
    tie(spare, memories[1], 0.9)  # same memory again, higher
    tie(spare, memories[3], 0.4)
    kept = services.entities_merge(entities=[old, spare, busy])
    assert kept.pk == busy.pk  # 3 links, against 1 and 2
    links = {(lk.memory_id, lk.entity_id, lk.relevance_score)
             for lk in EntityLink.objects.all()}
    assert links == {(memories[0].pk, busy.pk, 0.8), (memories[1].pk, busy.pk, 0.9),
                     (memories[2].pk, busy.pk, 1.0), (memories[3].pk, busy.pk, 0.4)}
    assert set(Entity.objects.live().values_list("pk", flat=True)) == {busy.pk}
    assert Entity.objects.get(pk=old.pk).deleted_at is not None
    assert Entity.objects.get(pk=spare.pk).deleted_at is not None
    counted = Entity.objects.live().with_counts().get()
    assert counted.memory_count == 4 and counted.relationship_count == 0


def test_merge_keeps_the_oldest_among_equal_link_counts(account, memories):
    newer = make(account, "Acme")
    older = make(account, "ACME GmbH", "other", created_at=timezone.now() - timedelta(days=1))
    tie(newer, memories[0])
    tie(older, memories[1])
    assert services.entities_merge(entities=[newer, older]).pk == older.pk
    assert set(EntityLink.objects.values_list("entity_id", flat=True)) == {older.pk}


def test_merge_keeps_every_entitys_metadata_the_kept_ones_values_first(account, memories):
    kept = make(account, "Postgres", "technology", metadata={"version": "16", "owner": "dba"})
    other = make(account, "PostgreSQL", "technology", metadata={"version": "15", "url": "x"})
    third = make(account, "PG", "product", metadata={"x": 1})
    tie(kept, memories[0])
    tie(kept, memories[1])
    tie(other, memories[2])
    merged = services.entities_merge(entities=[third, other, kept])
    expected = {"version": "16", "owner": "dba", "url": "x", "x": 1}
    assert merged.pk == kept.pk and merged.metadata == expected
    assert Entity.objects.get(pk=kept.pk).metadata == expected


def test_a_merge_whose_metadata_together_would_be_too_large_changes_nothing(account,
                                                                            memories):
    first = make(account, "Acme", metadata={"a": "x" * 6000})
    second = make(account, "Acme Industries", metadata={"b": "y" * 6000})
    tie(first, memories[0])
    tie(second, memories[1])
    with pytest.raises(Invalid) as refused:
        services.entities_merge(entities=[first, second])
    assert refused.value.field == "metadata"
    assert Entity.objects.live().count() == 2
    assert set(EntityLink.objects.values_list("entity_id", flat=True)) == {first.pk, second.pk}


def test_merge_refuses_other_accounts_deleted_rows_and_single_entities(
        account, other_account, memories):
    mine, theirs = make(account, "Acme"), make(other_account, "Acme")
    with pytest.raises(Invalid):
        services.entities_merge(entities=[mine, theirs])
    with pytest.raises(Invalid):
        services.entities_merge(entities=[mine])
    gone = make(account, "Gone")
    services.entity_delete(entity=gone)
    with pytest.raises(Invalid):
        services.entities_merge(entities=[mine, gone])
    assert Entity.objects.live().count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_links_racing_a_merge_end_on_the_kept_entity_or_are_refused(account, api_key, agent):
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import run_together

    memories = [new_memory(account, agent, f"m{i}") for i in range(6)]
    kept_side = make(account, "Acme")
    merged_side = make(account, "ACME Labs", "concept")
    for memory in memories[:3]:
        tie(kept_side, memory)

    def call(i):
        if i == 0:
            return services.entities_merge(entities=[kept_side, merged_side]).pk
        response = make_client(api_key).post(
            "/v1/entities/links", {"entity_id": str(merged_side.pk),
                                   "memory_id": str(memories[i].pk)}, format="json")
        return response.status_code

    results = run_together(6, call)
    assert results[0] == kept_side.pk
    assert set(results[1:]) <= {201, 422}
    # A link that landed before the merge moved to the kept entity (one to a memory it had
    # already collapsed into its link); one after it was refused (the entity is gone): none
    # is left on the merged-away entity.
    assert not EntityLink.objects.filter(entity=merged_side).exists()
    linked = {memories[i].pk for i in range(3)} | {
        memories[i].pk for i in range(1, 6) if results[i] == 201}
    assert set(EntityLink.objects.values_list("memory_id", flat=True)) == linked
    assert set(EntityLink.objects.values_list("entity_id", flat=True)) == {kept_side.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_link_made_as_a_merge_starts_and_held_again_meanwhile_is_no_deadlock(
        account, api_key, agent, monkeypatch):
    """A link to a memory the merge had not seen (made between its reading of the linked
    memories and its locks) moved with the merge, which then locked that memory after the
    entities: a request holding the memory and waiting for the entity deadlocked with it."""
    import threading
    import time

    from django.db import connection

    from memories_app.models import Memory
    from tests.conftest import make_client

    kept, merged = make(account, "Acme"), make(account, "ACME Labs", "concept")
    for i in range(3):
        tie(kept, new_memory(account, agent, f"kept {i}"))
    late = new_memory(account, agent, "linked as the merge starts")

    def post_link(answers):
        answers.append(make_client(api_key).post("/v1/entities/links", {
            "entity_id": str(merged.pk), "memory_id": str(late.pk)}, format="json"
        ).status_code)
        connection.close()

    merging, answers, waiting = threading.current_thread(), [], []

    def hooked(manager, hook):
        real = manager.select_for_update

        def select_for_update(*args, **kwargs):
            if threading.current_thread() is merging and not hook.__dict__.get("ran"):
                hook.ran = True
                hook()
            return real(*args, **kwargs)
        monkeypatch.setattr(manager, "select_for_update", select_for_update)

    def link_first():  # before the merge locks the memories: the link lands
        runner = threading.Thread(target=post_link, args=(answers,))
        runner.start()
        runner.join(30)

    def link_again():  # the entities held: a request holds the memory, waits for one
        runner = threading.Thread(target=post_link, args=(answers,))
        runner.start()
        waiting.append(runner)
        with connection.cursor() as cursor:
            for _ in range(100):
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid <> "
                               "pg_backend_pid() AND wait_event_type = 'Lock'")
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)

    hooked(Memory.objects, link_first)
    hooked(EntityLink.objects, link_again)
    assert services.entities_merge(entities=[kept, merged]).pk == kept.pk
    waiting[0].join(30)
    assert answers == [201, 422]  # the second found the entity merged away
    assert set(EntityLink.objects.filter(memory=late).values_list("entity_id", flat=True)) == {
        kept.pk}


# --- admin --------------------------------------------------------------------------------


def test_the_entity_page_lists_its_memories(admin_client, account, memories):
    acme = make(account, "Acme")
    tie(acme, memories[0], 0.7)
    page = admin_client.get(reverse("admin:entities_app_entity_change", args=[acme.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Acme memory 0" in html and "0.7" in html and "Acme memory 1" not in html
    listing = admin_client.get(reverse("admin:entities_app_entity_changelist")).content
    assert b"Acme" in listing


def test_the_merge_action_merges_the_selection(admin_client, account, memories):
    acme, labs = make(account, "Acme"), make(account, "Acme Labs", "concept")
    tie(acme, memories[0])
    tie(labs, memories[0], 0.2)
    tie(labs, memories[1])
    response = act(admin_client, "entities_app_entity", "merge_selected", [acme, labs])
    assert any("Merged 1 into Acme Labs" in t for t in texts(response))
    assert list(Entity.objects.live()) == [labs]
    assert EntityLink.objects.get(memory=memories[0]).relevance_score == 1.0
    refused = act(admin_client, "entities_app_entity", "merge_selected", [labs])
    assert any("at least two" in t for t in texts(refused))


def test_admin_edits_go_through_the_service_and_refuse_a_taken_name(admin_client, account):
    acme, globex = make(account, "Acme"), make(account, "Globex")
    url = reverse("admin:entities_app_entity_change", args=[globex.pk])
    taken = admin_client.post(url, {"name": "ACME Inc.", "entity_type": "organization",
                                    "metadata": "{}", "links-TOTAL_FORMS": "0",
                                    "links-INITIAL_FORMS": "0"})
    assert taken.status_code == 200 and b"already exists" in taken.content
    assert Entity.objects.get(pk=globex.pk).name == "Globex"
    done = admin_client.post(url, {"name": "Globex Corp", "entity_type": "organization",
                                   "metadata": '{"k": 1}', "links-TOTAL_FORMS": "0",
                                   "links-INITIAL_FORMS": "0"})
    assert done.status_code == 302
    globex.refresh_from_db()
    assert (globex.name, globex.key, globex.metadata) == ("Globex Corp", "globex", {"k": 1})
    assert acme.name == "Acme"


def test_delete_and_restore_actions(admin_client, account):
    acme = make(account, "Acme")
    act(admin_client, "entities_app_entity", "soft-delete_selected", [acme])
    assert Entity.objects.get(pk=acme.pk).deleted_at is not None
    act(admin_client, "entities_app_entity", "restore_selected", [acme])
    assert Entity.objects.get(pk=acme.pk).deleted_at is None


# --- purge --------------------------------------------------------------------------------


def test_purge_removes_entities_deleted_past_retention_with_their_links(account, memories):
    old, recent, live = make(account, "Old"), make(account, "Recent"), make(account, "Live")
    for entity in (old, recent, live):
        tie(entity, memories[0])
    Entity.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=40))
    Entity.objects.filter(pk=recent.pk).update(deleted_at=timezone.now() - timedelta(days=5))
    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "30", "--dry-run", stdout=out)
    assert "1 entities (1 links)" in out.getvalue()
    assert Entity.objects.count() == 3 and EntityLink.objects.count() == 3
    call_command("purge_deleted", "--older-than-days", "30", stdout=out)
    assert set(Entity.objects.values_list("name", flat=True)) == {"Recent", "Live"}
    assert set(EntityLink.objects.values_list("entity__name", flat=True)) == {"Recent", "Live"}


def test_purging_a_memory_takes_its_links(account, memories):
    from memories_app.models import Memory

    acme = make(account, "Acme")
    tie(acme, memories[0])
    tie(acme, memories[1])
    Memory.objects.filter(pk=memories[0].pk).update(
        deleted_at=timezone.now() - timedelta(days=40))
    call_command("purge_deleted", "--older-than-days", "30", stdout=StringIO())
    assert list(EntityLink.objects.values_list("memory_id", flat=True)) == [memories[1].pk]
    assert Entity.objects.live().count() == 1
