"""The entity graph (API.md §9): GET /v1/entities/{id}/relationships and
GET /v1/entities/{id}/neighborhood, on a small graph drawn by hand.

    m1: A B C     m2: A B X     m3: A B D     m4: A C     m5: A E
    m6: B F       m7: F G       m8: G H       m9 (deleted): A H
    X is a deleted entity; "O" belongs to another account.

Weights: A-B 3, A-C 2, A-D 1, A-E 1, B-C 1, B-D 1, B-F 1, F-G 1, G-H 1 (A-H only through a
deleted memory, A-X only to a deleted entity: neither exists). Entity ids are fixed so that
ties, broken by id, read the same on every database: A < B < C < ... in id order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from entities_app import graph
from entities_app.models import Entity, EntityLink
from memories_app.models import Memory
from tests.conftest import assert_error, real_queries
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture

NAMES = "ABCDEFGHX"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
MEMORIES = {  # name: (entities, minutes after T0)
    "m1": ("ABC", 1), "m2": ("ABX", 2), "m3": ("ABD", 3), "m4": ("AC", 4), "m5": ("AE", 5),
    "m6": ("BF", 6), "m7": ("FG", 7), "m8": ("GH", 8), "m9": ("AH", 9),
}


def eid(name: str) -> uuid.UUID:
    return uuid.UUID(int=NAMES.index(name) + 1)


def make_entity(account, name, entity_type="concept", pk=None) -> Entity:
    return Entity.objects.create(id=pk or eid(name), account=account, name=name,
                                 entity_type=entity_type)


def make_memory(account, agent, content, at) -> Memory:
    return Memory.objects.create(account=account, agent=agent, content=content, created_at=at)


def link_all(account, memory, entities) -> None:
    EntityLink.objects.bulk_create([EntityLink(account=account, entity=e, memory=memory)
                                    for e in entities])


@pytest.fixture
def hand_graph(account, agent, other_account):
    from sessions_app.services import agent_get_or_create

    entities = {name: make_entity(account, name) for name in NAMES}
    memories = {}
    for key, (names, minutes) in MEMORIES.items():
        memories[key] = make_memory(account, agent, f"{key}: " + " and ".join(names),
                                    T0 + timedelta(minutes=minutes))
        link_all(account, memories[key], [entities[n] for n in names])
    Memory.objects.filter(pk=memories["m9"].pk).update(deleted_at=T0)
    Entity.objects.filter(pk=entities["X"].pk).update(deleted_at=T0)
    theirs = agent_get_or_create(account=other_account, name="theirs")[0]
    other = make_entity(other_account, "O", pk=uuid.UUID(int=99))
    shared = make_memory(other_account, theirs, "theirs", T0)
    link_all(other_account, shared, [other])
    return {"entities": entities, "memories": memories, "other": other}


def ids(*names) -> list[str]:
    return [str(eid(n)) for n in names]


def neighborhood(client, name="A", **params):
    response = client.get(f"/v1/entities/{eid(name)}/neighborhood", params)
    assert response.status_code == 200, response.content
    return response.json()


def edges(body) -> list[tuple]:
    by_id = {str(eid(n)): n for n in NAMES}
    return [(by_id[e["source"]], by_id[e["target"]], e["weight"]) for e in body["edges"]]


def nodes(body) -> list[tuple]:
    by_id = {str(eid(n)): n for n in NAMES}
    return [(by_id[n["id"]], n["depth"]) for n in body["nodes"]]


# --- relationships ----------------------------------------------------------------------------


def test_relationships_are_the_co_occurring_entities_most_shared_first(client, hand_graph):
    body = client.get(f"/v1/entities/{eid('A')}/relationships").json()
    assert set(body) == {"object", "data", "next_cursor", "has_more", "total_count"}
    assert (body["object"], body["total_count"], body["has_more"]) == ("list", 4, False)
    assert body["next_cursor"] is None
    assert [r["entity"]["id"] for r in body["data"]] == ids("B", "C", "D", "E")
    assert [r["shared_memory_count"] for r in body["data"]] == [3, 2, 1, 1]
    first = body["data"][0]
    assert set(first) == {"object", "entity", "shared_memory_count", "latest_shared_memory"}
    assert first["object"] == "entity_relationship"
    assert first["entity"] == {"id": str(eid("B")), "name": "B", "entity_type": "concept"}
    m3 = hand_graph["memories"]["m3"]
    assert first["latest_shared_memory"] == {
        "id": str(m3.id), "content": "m3: A and B and D",
        "created_at": int(m3.created_at.timestamp())}
    assert body["data"][1]["latest_shared_memory"]["id"] == str(hand_graph["memories"]["m4"].id)


def test_relationships_never_show_deleted_memories_entities_or_other_accounts(
        client, hand_graph):
    body = client.get(f"/v1/entities/{eid('H')}/relationships").json()
    assert [(r["entity"]["name"], r["shared_memory_count"]) for r in body["data"]] == [("G", 1)]
    deleted = client.get(f"/v1/entities/{eid('X')}/relationships")
    assert_error(deleted, 404, "not_found")
    theirs = client.get(f"/v1/entities/{hand_graph['other'].pk}/relationships")
    assert_error(theirs, 404, "not_found")
    assert_error(client.get("/v1/entities/not-a-uuid/relationships"), 404, "not_found")
    assert_error(client.get(f"/v1/entities/{uuid.uuid4()}/relationships"), 404, "not_found")


def test_relationships_page_with_limit_offset_and_cursor(client, hand_graph):
    url = f"/v1/entities/{eid('A')}/relationships"
    first = client.get(url, {"limit": 3}).json()
    assert [r["entity"]["name"] for r in first["data"]] == ["B", "C", "D"]
    assert first["has_more"] is True and first["total_count"] == 4
    rest = client.get(url, {"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [r["entity"]["name"] for r in rest["data"]] == ["E"]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert client.get(url, {"offset": 1, "limit": 1}).json()["data"][0]["entity"]["name"] == "C"
    past = client.get(url, {"offset": 10}).json()
    assert (past["data"], past["total_count"], past["has_more"]) == ([], 4, False)
    assert client.get(url, {"limit": 1000}).json()["total_count"] == 4  # clamped, not refused
    assert_error(client.get(url, {"limit": 0}), 422, "validation_error", field="limit")
    assert_error(client.get(url, {"offset": -1}), 422, "validation_error", field="offset")
    assert_error(client.get(url, {"cursor": "nonsense"}), 422, "validation_error",
                 field="cursor")


def test_a_long_shared_memory_is_cut_to_a_snippet(client, account, agent, hand_graph):
    a, b = hand_graph["entities"]["A"], hand_graph["entities"]["B"]
    memory = make_memory(account, agent, "x" * 500, T0 + timedelta(days=1))
    link_all(account, memory, [a, b])
    latest = client.get(f"/v1/entities/{a.pk}/relationships").json()["data"][0]
    assert latest["shared_memory_count"] == 4
    assert latest["latest_shared_memory"]["content"] == "x" * graph.SNIPPET_CHARS + "…"


@pytest.mark.parametrize("gone", ["soft-deleted", "deleted", "unlinked"])
def test_the_newest_shared_memory_gone_the_one_before_it_shows(client, account, agent,
                                                               hand_graph, gone):
    m = hand_graph["memories"]
    newest = make_memory(account, agent, "newest", T0 + timedelta(days=1))
    link_all(account, newest, [hand_graph["entities"]["A"], hand_graph["entities"]["B"]])
    url = f"/v1/entities/{eid('A')}/relationships"
    assert client.get(url).json()["data"][0]["latest_shared_memory"]["id"] == str(newest.id)
    if gone == "soft-deleted":
        client.delete(f"/v1/memories/{newest.id}")
    elif gone == "deleted":
        Memory.objects.filter(pk=newest.pk).delete()
    else:
        EntityLink.objects.filter(memory=newest, entity=hand_graph["entities"]["B"]).delete()
    first = client.get(url).json()["data"][0]
    assert first["shared_memory_count"] == 3
    assert first["latest_shared_memory"]["id"] == str(m["m3"].id)
    assert count_queries(client, url) == 5  # the stale row is looked up in the links


def test_an_older_memory_linked_later_is_not_the_newest(client, account, agent, hand_graph):
    older = make_memory(account, agent, "older", T0)
    link_all(account, older, [hand_graph["entities"]["A"], hand_graph["entities"]["B"]])
    first = client.get(f"/v1/entities/{eid('A')}/relationships").json()["data"][0]
    assert first["shared_memory_count"] == 4
    assert first["latest_shared_memory"]["id"] == str(hand_graph["memories"]["m3"].id)


def test_an_entity_without_relationships_has_an_empty_list(client, account):
    lonely = make_entity(account, "A")
    body = client.get(f"/v1/entities/{lonely.pk}/relationships").json()
    assert (body["data"], body["total_count"], body["has_more"]) == ([], 0, False)


# --- neighbourhood ----------------------------------------------------------------------------


def test_depth_1_is_the_entity_and_its_neighbours(client, hand_graph):
    body = neighborhood(client)
    assert set(body) == {"object", "entity", "depth", "max_neighbors", "nodes", "edges"}
    assert (body["object"], body["depth"], body["max_neighbors"]) == ("entity_neighborhood", 1,
                                                                       10)
    assert body["entity"]["id"] == str(eid("A")) and body["entity"]["object"] == "entity"
    assert body["entity"]["relationship_count"] == 4
    assert body["entity"] == client.get(f"/v1/entities/{eid('A')}").json()
    assert nodes(body) == [("A", 0), ("B", 1), ("C", 1), ("D", 1), ("E", 1)]
    assert body["nodes"][1] == {"id": str(eid("B")), "name": "B", "entity_type": "concept",
                                "depth": 1}
    assert edges(body) == [("A", "B", 3), ("A", "C", 2), ("A", "D", 1), ("A", "E", 1)]


def test_depth_2_and_3_follow_each_new_node_once(client, hand_graph):
    two = neighborhood(client, depth=2)
    assert nodes(two) == [("A", 0), ("B", 1), ("C", 1), ("D", 1), ("E", 1), ("F", 2)]
    assert edges(two) == [("A", "B", 3), ("A", "C", 2), ("A", "D", 1), ("A", "E", 1),
                          ("B", "C", 1), ("B", "D", 1), ("B", "F", 1)]
    three = neighborhood(client, depth=3)
    assert nodes(three) == nodes(two) + [("G", 3)]
    assert edges(three) == edges(two) + [("F", "G", 1)]  # H is 4 hops away


def test_max_neighbors_keeps_the_strongest_and_breaks_ties_by_id(client, hand_graph):
    assert nodes(neighborhood(client, max_neighbors=2)) == [("A", 0), ("B", 1), ("C", 1)]
    assert nodes(neighborhood(client, max_neighbors=3))[-1] == ("D", 1)
    one = neighborhood(client, depth=3, max_neighbors=1)
    assert nodes(one) == [("A", 0), ("B", 1)] and edges(one) == [("A", "B", 3)]
    two = neighborhood(client, depth=2, max_neighbors=2)
    assert nodes(two) == [("A", 0), ("B", 1), ("C", 1)]
    assert edges(two) == [("A", "B", 3), ("A", "C", 2), ("B", "C", 1)]
    assert neighborhood(client, max_neighbors=100)["max_neighbors"] == graph.MAX_NEIGHBORS


def test_a_depth_past_the_most_is_clamped_and_the_answer_says_so(client, hand_graph):
    deepest = neighborhood(client, depth=graph.MAX_DEPTH)
    for depth in (graph.MAX_DEPTH + 1, 5, 10**6):
        assert neighborhood(client, depth=depth) == deepest
    assert deepest["depth"] == graph.MAX_DEPTH


def test_the_answer_is_the_same_every_time(client, hand_graph):
    first = neighborhood(client, depth=3, max_neighbors=2)
    assert all(neighborhood(client, depth=3, max_neighbors=2) == first for _ in range(3))


@pytest.mark.parametrize("params, field", [
    ({"depth": 0}, "depth"), ({"depth": "two"}, "depth"),
    ({"max_neighbors": 0}, "max_neighbors"), ({"max_neighbors": "x"}, "max_neighbors"),
])
def test_bad_parameters_are_a_422_naming_the_field(client, hand_graph, params, field):
    response = client.get(f"/v1/entities/{eid('A')}/neighborhood", params)
    assert_error(response, 422, "validation_error", field=field)


def test_neighborhood_of_a_missing_deleted_or_foreign_entity_is_a_404(client, anon, hand_graph):
    for pk in (eid("X"), hand_graph["other"].pk, uuid.uuid4(), "nope"):
        assert_error(client.get(f"/v1/entities/{pk}/neighborhood"), 404, "not_found")
    assert_error(anon.get(f"/v1/entities/{eid('A')}/neighborhood"), 401, "unauthorized")


def test_deleted_entities_vanish_and_return_with_a_restore(client, hand_graph):
    from entities_app import services

    b = hand_graph["entities"]["B"]
    services.entity_delete(entity=b)
    assert nodes(neighborhood(client)) == [("A", 0), ("C", 1), ("D", 1), ("E", 1)]
    services.entity_restore(entity=Entity.objects.get(pk=b.pk))
    assert nodes(neighborhood(client))[1] == ("B", 1)


def test_deleting_and_restoring_a_memory_moves_the_weights(client, hand_graph):
    m1 = Memory.objects.get(pk=hand_graph["memories"]["m1"].pk)
    client.delete(f"/v1/memories/{m1.pk}")
    assert edges(neighborhood(client))[:2] == [("A", "B", 2), ("A", "C", 1)]
    for name in "ABCH":  # the counts read from the table are the entity API's
        assert neighborhood(client, name)["entity"] == client.get(
            f"/v1/entities/{eid(name)}").json()
    Memory.objects.filter(pk=m1.pk).update(deleted_at=None)
    assert edges(neighborhood(client))[:2] == [("A", "B", 3), ("A", "C", 2)]


def test_entity_counts_work_inside_other_queries_too(hand_graph):
    """with_counts() reads relationship_count from the co-occurrence table: as a subquery of
    another query (the entity table aliased) and beside joins as well."""
    inner = Entity.objects.live().with_counts().filter(relationship_count__gte=3).values("pk")
    assert sorted({link.entity.name for link in EntityLink.objects.filter(entity__in=inner)}) \
        == ["A", "B"]
    assert Memory.objects.filter(entity_links__entity__in=inner).distinct().count() == 7
    joined = (Entity.objects.live().filter(links__memory__content__startswith="m1: ")
              .with_counts().values_list("name", "relationship_count", "memory_count"))
    assert sorted(joined) == [("A", 4, 5), ("B", 4, 4), ("C", 2, 2)]


# --- documented -------------------------------------------------------------------------------


def test_every_graph_response_matches_its_documented_schema(schema, client, hand_graph):
    from tests.memoryrelay_site.test_openapi import Conformance

    check = Conformance(schema)
    relationships, hood = "/v1/entities/{id}/relationships", "/v1/entities/{id}/neighborhood"
    a = eid("A")
    check(client.get(f"/v1/entities/{a}/relationships", {"limit": 2}), relationships, "get")
    check(client.get(f"/v1/entities/{a}/relationships", {"limit": 0}), relationships, "get")
    check(client.get(f"/v1/entities/{uuid.uuid4()}/relationships"), relationships, "get")
    check(client.get(f"/v1/entities/{a}/neighborhood", {"depth": 3}), hood, "get")
    check(client.get(f"/v1/entities/{a}/neighborhood", {"depth": 0}), hood, "get")
    check(client.get(f"/v1/entities/{eid('X')}/neighborhood"), hood, "get")
    assert {(p, s) for p, _, s in check.seen} == {
        (relationships, 200), (relationships, 422), (relationships, 404),
        (hood, 200), (hood, 422), (hood, 404)}


# --- bounded queries --------------------------------------------------------------------------


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(real_queries(captured))


def bigger_graph(account, agent, entities=120, memories=600, seed=3):
    import random

    rng = random.Random(seed)
    made = [make_entity(account, f"E{i}", pk=uuid.UUID(int=1000 + i)) for i in range(entities)]
    rows = Memory.objects.bulk_create([
        Memory(account=account, agent=agent, content=f"memory {i}",
               created_at=T0 + timedelta(seconds=i)) for i in range(memories)])
    links = []
    for memory in rows:
        picked = {min(int(rng.paretovariate(1.0)) - 1, entities - 1)
                  for _ in range(rng.randint(2, 6))}
        links += [EntityLink(account=account, entity=made[i], memory=memory) for i in picked]
    EntityLink.objects.bulk_create(links)
    return made


@pytest.mark.parametrize("path, queries", [
    ("relationships", 4),  # key, entity (with counts), page, newest shared memories
    ("neighborhood?depth=1", 3),  # key, entity, one per hop
    ("neighborhood?depth=2", 4),
    ("neighborhood?depth=3&max_neighbors=50", 5),
])
def test_query_counts_do_not_grow_with_the_graph(client, account, agent, hand_graph, path,
                                                 queries):
    assert count_queries(client, f"/v1/entities/{eid('A')}/{path}") == queries
    hub = bigger_graph(account, agent)[0]
    assert count_queries(client, f"/v1/entities/{hub.pk}/{path}") == queries


def test_a_neighbourhood_with_nothing_left_to_follow_stops_early(client, account):
    lonely = make_entity(account, "A")
    assert count_queries(client, f"/v1/entities/{lonely.pk}/neighborhood?depth=3") == 3


# --- the co-occurrence table stays exact ------------------------------------------------------


def assert_exact(account=None):
    stored = graph.cooccurrence_rows()
    graph.cooccurrence_rebuild()
    assert graph.cooccurrence_rows() == stored


def test_every_write_path_keeps_the_weights_exact(account, agent, hand_graph):
    from entities_app import services

    e, m = hand_graph["entities"], hand_graph["memories"]
    stored = graph.cooccurrence_rows()
    assert stored[(eid("A"), eid("B"))] == stored[(eid("B"), eid("A"))] == 3
    assert (eid("A"), eid("H")) not in stored  # only through the deleted m9
    assert_exact()
    EntityLink.objects.filter(entity=e["C"], memory=m["m1"]).delete()
    assert_exact()
    Memory.objects.filter(pk=m["m9"].pk).update(deleted_at=None)  # restored: A-H appears
    assert graph.cooccurrence_rows()[(eid("H"), eid("A"))] == 1
    assert_exact()
    Memory.objects.filter(pk=m["m3"].pk).delete()  # hard delete, links cascade
    assert_exact()
    services.entities_merge(entities=[e["D"], e["E"], e["F"]])  # links re-pointed
    assert_exact()
    Entity.objects.filter(pk=e["G"].pk).delete()
    assert_exact()
    fresh = make_memory(account, agent, "fresh", T0)
    EntityLink.objects.filter(memory=m["m2"]).update(memory=fresh)
    assert graph.cooccurrence_rows()[(eid("A"), eid("X"))] == 1
    assert_exact()


def test_the_triggers_survive_every_later_migration(db):
    """A migration that rebuilds the links' or memories' table (SQLite does that to alter a
    column) drops its triggers with it: such a migration must create them again (0002)."""
    if connection.vendor == "postgresql":
        sql = ("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
               "AND tgname LIKE 'entities_app_cooccurrence%%'")
        expected = {"link_insert", "link_delete", "link_update", "link_truncate",
                    "memory_update", "memory_delete", "memory_truncate"}
    else:
        sql = ("SELECT name FROM sqlite_master WHERE type = 'trigger' "
               "AND name LIKE 'entities_app_cooccurrence%%'")
        expected = {"link_insert", "link_delete", "link_update", "memory_gone", "memory_back",
                    "memory_delete"}
    with connection.cursor() as cursor:
        cursor.execute(sql)
        found = {name.removeprefix("entities_app_cooccurrence_") for (name,) in cursor}
    assert found == expected


def test_the_weights_are_exact_after_many_random_writes(account, agent):
    import random

    rng = random.Random(11)
    made = bigger_graph(account, agent, entities=40, memories=200)
    memories = list(Memory.objects.filter(account=account))
    for _ in range(60):
        memory, entity = rng.choice(memories), rng.choice(made)
        action = rng.random()
        if action < 0.4:
            EntityLink.objects.get_or_create(account=account, entity=entity, memory=memory)
        elif action < 0.7:
            victim = EntityLink.objects.filter(memory=memory).order_by("id").first()
            if victim is not None:
                victim.delete()
        elif action < 0.9:
            Memory.objects.filter(pk=memory.pk).update(
                deleted_at=None if rng.random() < 0.5 else T0)
        else:
            Entity.objects.filter(pk=entity.pk).update(deleted_at=T0)
    assert_exact()
    for entity in made[:8]:  # the newest shared memory, kept in the rows or looked up
        page = graph.entity_relationships(entity=entity, limit=100, offset=0)
        for row in page.rows:
            shared = (Memory.objects.live().filter(entity_links__entity=entity)
                      .filter(entity_links__entity=row.entity.id)
                      .order_by("-created_at", "-id").first())
            assert row.latest_shared_memory.id == shared.pk


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgresql_reads_the_same_neighbours_as_the_portable_query(account, agent):
    made = bigger_graph(account, agent)
    sources = [e.pk for e in made[:30]]
    for k in (1, 5, 50):
        fast = graph.top_neighbors(account_id=account.pk, sources=sources, k=k)
        portable = graph.top_neighbors(account_id=account.pk, sources=sources, k=k,
                                       portable=True)
        assert fast == portable and fast


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_links_to_one_memory_written_at_once_both_count(account, agent):
    import threading
    import time

    from django.db import connections, transaction

    a, b = make_entity(account, "A"), make_entity(account, "B")
    memory = make_memory(account, agent, "both", T0)
    first_written, errors = threading.Event(), []

    def first():
        try:
            with transaction.atomic():
                EntityLink.objects.create(account=account, entity=a, memory=memory)
                first_written.set()
                time.sleep(0.5)  # the second link is written meanwhile
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def second():
        try:
            first_written.wait(5)
            EntityLink.objects.create(account=account, entity=b, memory=memory)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert graph.cooccurrence_rows() == {(a.pk, b.pk): 1, (b.pk, a.pk): 1}


ROUNDS = 12
SHARING = 12  # memories per round, each linked to the same SHARED entities
SHARED = 6


def shared_memories(account, agent, round_, session=None, bystander=None) -> list[Memory]:
    """SHARING memories each linked to the same SHARED entities (each in turn linked first:
    links come in any order), so every one of them counts the same pairs. Given those, a
    third of them is in ``session`` and a third is ``bystander``'s."""
    shared = [make_entity(account, f"R{round_}-{i}", pk=uuid.uuid4()) for i in range(SHARED)]
    memories = []
    for i in range(SHARING):
        memory = Memory.objects.create(
            account=account, agent=bystander if bystander and i % 3 == 0 else agent,
            session=session if i % 3 == 1 else None, content=f"round {round_}, memory {i}")
        link_all(account, memory, shared[i % SHARED:] + shared[:i % SHARED])
        memories.append(memory)
    return memories


def assert_rebuild_agrees():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("entity_graph_rebuild", "--check", stdout=out)
    assert out.getvalue().startswith("0 of "), out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deletes_of_memories_sharing_entities_all_succeed(account, api_key, agent):
    """Each delete counts the same pairs down: the trigger used to lock them in the order its
    join met them, two deletes held one each and waited for the other's (a 503)."""
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import run_together

    codes = []
    for round_ in range(ROUNDS):
        memories = shared_memories(account, agent, round_)
        codes += run_together(SHARING, lambda i, memories=memories: make_client(api_key)
                              .delete(f"/v1/memories/{memories[i].id}").status_code)
    assert codes == [200] * ROUNDS * SHARING
    assert graph.cooccurrence_rows() == {}
    assert_rebuild_agrees()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_session_and_agent_deletes_racing_memory_deletes_all_succeed(account, api_key, agent):
    """A cascade (a session's memories, an agent's) counts down the pairs of many memories
    in one statement, while single deletes (of the same memories and of another agent's)
    count down the same pairs."""
    from sessions_app.services import agent_get_or_create, session_create
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import run_together

    answers = []
    for round_ in range(ROUNDS):
        owner = agent_get_or_create(account=account, name=f"owner-{round_}")[0]
        session = session_create(account=account, agent_ref=str(owner.id))
        memories = shared_memories(account, owner, round_, session=session, bystander=agent)
        calls = [f"/v1/memories/{m.id}" for m in memories] + [
            f"/v1/sessions/{session.id}?cascade_memories=true", f"/v1/agents/{owner.id}"]
        answers += run_together(len(calls), lambda i, calls=calls: (
            calls[i], make_client(api_key).delete(calls[i]).status_code))
    assert {code for _, code in answers} <= {200, 404}, answers
    assert all(code == 200 for url, code in answers if "/agents/" in url), answers
    assert graph.cooccurrence_rows() == {}
    assert_rebuild_agrees()


def test_the_rebuild_command_checks_and_repairs_the_table(hand_graph):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("entity_graph_rebuild", "--check", stdout=out)
    assert out.getvalue().startswith("0 of 22 co-occurring pairs differ")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {graph.COOCCURRENCE} SET weight = 99")
    with pytest.raises(CommandError, match="not exact"):
        call_command("entity_graph_rebuild", "--check", stdout=StringIO())
    out = StringIO()
    call_command("entity_graph_rebuild", "--account", "alice", stdout=out)
    assert "(22 were off)" in out.getvalue()  # A-X and B-X too: X may be restored
    call_command("entity_graph_rebuild", "--check", "--account", "alice", stdout=StringIO())
    with pytest.raises(CommandError, match="no account"):
        call_command("entity_graph_rebuild", "--account", "nobody")
