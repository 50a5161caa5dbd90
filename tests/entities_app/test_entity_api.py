"""Entities (API.md §9): create (get-or-create by name key and type), list with filters,
get, update, delete, and links to memories."""

from __future__ import annotations

import uuid

import pytest

from entities_app import services
from entities_app.models import Entity, EntityLink
from memoryrelay_site.serializers import METADATA_MAX_BYTES
from tests.conftest import assert_error
from tests.entities_app.conftest import create_entity, link

ENTITY_FIELDS = {"object", "id", "name", "entity_type", "type", "metadata", "memory_count",
                 "relationship_count", "created_at", "updated_at"}
LINK_FIELDS = {"entity_id", "memory_id", "relationship", "relevance_score", "created_at"}


def new_memory(account, agent, content="Acme ships the release", agent_ref=None):
    from memories_app.services import memory_create

    return memory_create(account=account, agent_ref=agent_ref or agent.name, content=content)


# --- create -------------------------------------------------------------------------------


def test_creating_an_entity_answers_201_with_every_field(client):
    body = create_entity(client, metadata={"hq": "Springfield"})
    assert set(body) == ENTITY_FIELDS
    assert body["object"] == "entity" and body["name"] == "Acme Corp"
    assert body["entity_type"] == "organization" and body["metadata"] == {"hq": "Springfield"}
    assert body["type"] == "organization"  # what OpenClaw's /memory-entities prints
    assert (body["memory_count"], body["relationship_count"]) == (0, 0)
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert client.get(f"/v1/entities/{body['id']}").json() == body


@pytest.mark.parametrize("spelling", ["Acme Corp", "ACME", "acme-corp", "Acme, Inc.",
                                      "  acme corporation "])
def test_the_same_name_key_and_type_answers_200_with_the_first_entity(client, entity, spelling):
    again = client.post("/v1/entities", {"name": spelling, "entity_type": "organization",
                                         "metadata": {"other": 1}}, format="json")
    assert again.status_code == 200
    assert again.json() == entity  # first name and metadata kept
    assert Entity.objects.count() == 1


def test_another_type_or_account_makes_another_entity(client, other_client, entity):
    person = create_entity(client, "ACME", "person")
    theirs = create_entity(other_client, "Acme Corp", "organization")
    assert len({entity["id"], person["id"], theirs["id"]}) == 3


def test_type_is_accepted_for_entity_type_and_place_for_location(client):
    assert create_entity(client, "Berlin", None, type="place")["entity_type"] == "location"
    assert client.post("/v1/entities", {"name": "Berlin", "type": "location"},
                       format="json").status_code == 200
    assert create_entity(client, "Rust", "Technology")["entity_type"] == "technology"


def test_metadata_null_or_absent_is_an_empty_object(client):
    assert create_entity(client, metadata=None)["metadata"] == {}
    assert create_entity(client, "Globex")["metadata"] == {}


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 256}, "name"),
    ({"name": None}, "name"), ({"name": 42}, "name"), ({"name": ["Acme"]}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"entity_type": "robot"}, "entity_type"), ({"entity_type": 3}, "entity_type"),
    ({"entity_type": None, "type": "robot"}, "type"), ({"entity_type": None}, "entity_type"),
    ({"entity_type": ""}, "entity_type"),
    ({"metadata": "x"}, "metadata"), ({"metadata": []}, "metadata"),
    ({"metadata": {"k": "x" * METADATA_MAX_BYTES}}, "metadata"),
])
def test_bad_fields_are_a_422_naming_the_field(client, body, field):
    full = {"name": "Acme", "entity_type": "organization", **body}
    assert_error(client.post("/v1/entities", full, format="json"), 422, "validation_error",
                 field)
    assert not Entity.objects.exists()


def test_a_name_of_255_characters_is_fine(client):
    assert len(create_entity(client, "x" * 255)["name"]) == 255


def test_a_missing_name_and_a_missing_type_are_422s(client):
    assert_error(client.post("/v1/entities", {"entity_type": "person"}, format="json"),
                 422, "validation_error", "name")
    assert_error(client.post("/v1/entities", {"name": "Bob"}, format="json"),
                 422, "validation_error", "entity_type")


def test_without_a_key_it_is_a_401(anon, db):
    assert_error(anon.get("/v1/entities"), 401, "unauthorized")
    assert_error(anon.post("/v1/entities", {"name": "a", "entity_type": "person"},
                           format="json"), 401, "unauthorized")


def test_a_create_that_loses_the_insert_race_answers_the_winner(client, account, monkeypatch):
    """The check-then-insert window, forced: the lookup misses an entity that exists."""
    winner = Entity.objects.create(account=account, name="Acme", entity_type="organization")
    real = services.entity_find
    calls = []

    def stale_first_read(**kwargs):
        calls.append(kwargs)
        return None if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "entity_find", stale_first_read)
    response = client.post("/v1/entities", {"name": "ACME Inc", "entity_type": "organization"},
                           format="json")
    assert response.status_code == 200 and response.json()["id"] == str(winner.pk)
    assert Entity.objects.count() == 1 and len(calls) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_entity_make_one_row(account, api_key):
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import THREADS, run_together

    spellings = ["Acme Corp", "ACME", "acme-corp", "Acme, Inc."]

    def call(i):
        response = make_client(api_key).post(
            "/v1/entities", {"name": spellings[i % 4], "type": "organization"}, format="json")
        return response.status_code, response.json()["id"]

    results = run_together(THREADS, call)
    assert len({entity_id for _, entity_id in results}) == 1
    assert sorted(code for code, _ in results) == [200] * (THREADS - 1) + [201]
    assert Entity.objects.count() == 1


# --- get, update, delete ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/entities/xyz", f"/v1/entities/{uuid.uuid4()}",
                                  "/v1/entities/1", "/v1/entities/%00"])
def test_a_missing_or_malformed_entity_is_a_404_on_every_method(client, path):
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.put(path, {"name": "x"}, format="json"), 404, "not_found")
    assert_error(client.patch(path, {"name": "x"}, format="json"), 404, "not_found")
    assert_error(client.delete(path), 404, "not_found")
    assert_error(client.post(f"{path}/link", {"memory_id": str(uuid.uuid4())}, format="json"),
                 404, "not_found")


def test_another_accounts_entity_is_a_404_everywhere(client, other_client, entity, memory):
    path = f"/v1/entities/{entity['id']}"
    assert_error(other_client.get(path), 404, "not_found")
    assert_error(other_client.put(path, {"name": "Mine"}, format="json"), 404, "not_found")
    assert_error(other_client.patch(path, {"name": "Mine"}, format="json"), 404, "not_found")
    assert_error(other_client.delete(path), 404, "not_found")
    assert_error(other_client.post(f"{path}/link", {"memory_id": str(memory.id)},
                                   format="json"), 404, "not_found")
    assert other_client.get("/v1/entities").json()["total_count"] == 0
    assert client.get(path).json()["name"] == "Acme Corp"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_changes_name_type_and_metadata_and_keeps_the_rest(client, entity, method):
    path = f"/v1/entities/{entity['id']}"
    body = getattr(client, method)(path, {"name": "Acme Labs", "metadata": None},
                                   format="json").json()
    assert body["name"] == "Acme Labs" and body["metadata"] == {"hq": "Springfield"}
    body = getattr(client, method)(path, {"type": "place", "metadata": {"k": 1}},
                                   format="json").json()
    assert body["entity_type"] == "location" and body["metadata"] == {"k": 1}
    assert body["name"] == "Acme Labs" and body["id"] == entity["id"]
    assert Entity.objects.get(pk=entity["id"]).key == "acmelabs"
    assert getattr(client, method)(path, {}, format="json").json()["name"] == "Acme Labs"


def test_an_update_onto_another_entitys_name_and_type_is_a_409(client, entity):
    other = create_entity(client, "Globex")
    path = f"/v1/entities/{other['id']}"
    assert_error(client.patch(path, {"name": "ACME, Inc."}, format="json"), 409, "conflict",
                 "name")
    person = create_entity(client, "Acme", "person")
    assert_error(client.put(f"/v1/entities/{person['id']}", {"type": "organization"},
                            format="json"), 409, "conflict")
    assert client.get(path).json()["name"] == "Globex"
    # Its own key under a new spelling is fine.
    assert client.patch(f"/v1/entities/{entity['id']}", {"name": "ACME"},
                        format="json").json()["name"] == "ACME"


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"), ({"name": "x" * 256}, "name"), ({"name": 1}, "name"),
    ({"entity_type": "robot"}, "entity_type"), ({"type": "robot"}, "type"),
    ({"metadata": "x"}, "metadata"),
])
def test_bad_update_fields_are_a_422_naming_the_field(client, entity, body, field):
    assert_error(client.patch(f"/v1/entities/{entity['id']}", body, format="json"), 422,
                 "validation_error", field)
    assert client.get(f"/v1/entities/{entity['id']}").json() == entity


def test_delete_is_soft_answers_200_and_frees_the_name(client, entity, memory):
    link(client, entity["id"], memory.id)
    response = client.delete(f"/v1/entities/{entity['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == entity["id"] and body["deleted"] is True
    assert body["deleted_at"].endswith("Z")
    assert Entity.objects.get(pk=entity["id"]).deleted_at is not None
    assert EntityLink.objects.count() == 1  # kept for a restore, hidden
    assert_error(client.get(f"/v1/entities/{entity['id']}"), 404, "not_found")
    assert_error(client.delete(f"/v1/entities/{entity['id']}"), 404, "not_found")
    assert client.get("/v1/entities").json()["data"] == []
    assert client.get(f"/v1/memories/{memory.id}").json()["entities"] == []
    again = create_entity(client, "ACME")
    assert again["id"] != entity["id"]


def test_restore_refuses_when_a_live_entity_took_the_key(client, entity):
    old = Entity.objects.get(pk=entity["id"])
    services.entity_delete(entity=old)
    services.entity_restore(entity=old)
    assert client.get(f"/v1/entities/{entity['id']}").status_code == 200
    services.entity_delete(entity=old)
    create_entity(client, "acme")
    from memoryrelay_site.errors import Conflict

    with pytest.raises(Conflict):
        services.entity_restore(entity=old)


# --- list ---------------------------------------------------------------------------------


def test_list_is_the_envelope_newest_first_with_counts(client, account, agent, memory):
    acme = create_entity(client)
    bob = create_entity(client, "Bob", "person")
    second = new_memory(account, agent, "Bob joined Acme")
    for entity_id, memory_id in [(acme["id"], memory.id), (acme["id"], second.id),
                                 (bob["id"], second.id)]:
        link(client, entity_id, memory_id)
    page = client.get("/v1/entities").json()
    assert set(page) == {"object", "data", "next_cursor", "has_more", "total_count"}
    assert page["object"] == "list" and page["total_count"] == 2
    assert [e["name"] for e in page["data"]] == ["Bob", "Acme Corp"]
    counts = {e["name"]: (e["memory_count"], e["relationship_count"]) for e in page["data"]}
    assert counts == {"Acme Corp": (2, 1), "Bob": (1, 1)}
    first = client.get("/v1/entities", {"limit": 1}).json()
    assert first["has_more"] is True and len(first["data"]) == 1
    rest = client.get("/v1/entities", {"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [e["name"] for e in rest["data"]] == ["Acme Corp"] and rest["has_more"] is False
    assert client.get("/v1/entities", {"limit": 1, "offset": 1}).json()["data"] == rest["data"]
    assert len(client.get("/v1/entities", {"limit": 1000}).json()["data"]) == 2
    assert_error(client.get("/v1/entities", {"limit": 0}), 422, "validation_error", "limit")


def test_counts_leave_out_deleted_memories_and_entities(client, account, agent, memory):
    from memories_app.services import memory_delete

    acme, bob = create_entity(client), create_entity(client, "Bob", "person")
    gone = new_memory(account, agent, "Bob and Acme")
    for entity_id in (acme["id"], bob["id"]):
        link(client, entity_id, memory.id)
        link(client, entity_id, gone.id)
    memory_delete(memory=gone)
    body = client.get(f"/v1/entities/{acme['id']}").json()
    assert (body["memory_count"], body["relationship_count"]) == (1, 1)
    client.delete(f"/v1/entities/{bob['id']}")
    body = client.get(f"/v1/entities/{acme['id']}").json()
    assert (body["memory_count"], body["relationship_count"]) == (1, 0)


def test_filters_type_agent_and_name(client, account, agent, memory):
    acme = create_entity(client)
    berlin = create_entity(client, "Berlin", "location")
    other_agent_memory = new_memory(account, agent, "Berlin office", agent_ref="bob-laptop")
    link(client, acme["id"], memory.id)
    link(client, berlin["id"], other_agent_memory.id)

    def names(**params):
        response = client.get("/v1/entities", params)
        assert response.status_code == 200, response.content
        return [e["name"] for e in response.json()["data"]]

    assert names(entity_type="organization") == ["Acme Corp"]
    assert names(type="place") == names(type="Location") == ["Berlin"]
    assert names(agent_id="my-assistant") == names(agent_id=str(agent.id)) == ["Acme Corp"]
    assert names(agent_id="bob-laptop") == ["Berlin"]
    assert names(agent_id="nobody") == names(agent_id=str(uuid.uuid4())) == []
    assert names(q="acme") == names(q="CORP") == names(q="acme, inc.") == ["Acme Corp"]
    assert names(q="er") == ["Berlin"]
    assert names(q="zzz") == []
    assert names(q="acme", entity_type="location") == []
    assert names(q="x" * 255) == []
    # longer than a name can be: a LIKE pattern of "_" * 25,000 is over SQLite's limit
    assert_error(client.get("/v1/entities", {"q": "_" * 25_000}), 422, "validation_error", "q")
    assert_error(client.get("/v1/entities", {"q": "x" * 256}), 422, "validation_error", "q")
    assert_error(client.get("/v1/entities", {"entity_type": "robot"}), 422, "validation_error",
                 "entity_type")
    assert_error(client.get("/v1/entities", {"type": "robot"}), 422, "validation_error", "type")


def test_the_agent_filter_leaves_out_deleted_memories_and_other_accounts(
        client, other_client, other_account, account, agent, memory):
    from memories_app.services import memory_delete

    acme = create_entity(client)
    link(client, acme["id"], memory.id)
    memory_delete(memory=memory)
    assert client.get("/v1/entities", {"agent_id": "my-assistant"}).json()["data"] == []
    theirs = new_memory(other_account, agent, "Acme", agent_ref="my-assistant")
    mine_named_alike = create_entity(other_client)
    link(other_client, mine_named_alike["id"], theirs.id)
    assert client.get("/v1/entities", {"agent_id": "my-assistant"}).json()["data"] == []


@pytest.mark.parametrize("rows", [2, 12])
def test_list_and_detail_take_a_constant_number_of_queries(client, account, agent, max_queries,
                                                            rows):
    memories = [new_memory(account, agent, f"memory {i}") for i in range(3)]
    ids = []
    for i in range(rows):
        entity = create_entity(client, f"Entity {i}", "concept")
        for memory in memories:
            link(client, entity["id"], memory.id)
        ids.append(entity["id"])
    with max_queries(3):  # key, count, page (with both counts)
        body = client.get("/v1/entities", {"limit": 100, "agent_id": "my-assistant",
                                           "q": "entity", "type": "concept"}).json()
    assert body["total_count"] == rows
    assert {(e["memory_count"], e["relationship_count"]) for e in body["data"]} == {
        (3, rows - 1)}
    with max_queries(2):  # key, entity with its counts
        assert client.get(f"/v1/entities/{ids[0]}").status_code == 200


# --- links --------------------------------------------------------------------------------


def test_linking_answers_201_then_200_and_keeps_one_link(client, entity, memory):
    body = link(client, entity["id"], memory.id)
    assert set(body) == LINK_FIELDS
    assert body == {**body, "entity_id": entity["id"], "memory_id": str(memory.id),
                    "relationship": "mentioned_in", "relevance_score": 1.0}
    assert body["created_at"].endswith("Z")
    again = link(client, entity["id"], memory.id, status=200, relationship="created_by",
                 relevance_score=0.4)
    assert again == {**body, "relationship": "created_by", "relevance_score": 0.4}
    same = link(client, entity["id"], memory.id, status=200)
    assert same == again  # nothing given: nothing changes
    assert EntityLink.objects.count() == 1
    link_row = EntityLink.objects.get()
    assert link_row.account_id == memory.account_id and link_row.source == "manual"
    detail = client.get(f"/v1/entities/{entity['id']}").json()
    assert detail["memory_count"] == 1


def test_sdk_030_links_through_the_entity_path(client, entity, memory):
    path = f"/v1/entities/{entity['id']}/link"
    response = client.post(path, {"memory_id": str(memory.id)}, format="json")
    assert response.status_code == 201
    assert response.json()["relationship"] == "mentioned_in"
    response = client.post(path, {"memory_id": str(memory.id), "relationship": "about"},
                           format="json")
    assert response.status_code == 200 and response.json()["relationship"] == "about"
    assert EntityLink.objects.count() == 1


@pytest.mark.parametrize("body, field", [
    ({"entity_id": None}, "entity_id"), ({"entity_id": "nope"}, "entity_id"),
    ({"entity_id": 5}, "entity_id"), ({"memory_id": None}, "memory_id"),
    ({"memory_id": "nope"}, "memory_id"), ({"memory_id": []}, "memory_id"),
    ({"relationship": 3}, "relationship"), ({"relationship": "r" * 65}, "relationship"),
    ({"relevance_score": 1.5}, "relevance_score"), ({"relevance_score": -0.1},
                                                     "relevance_score"),
    ({"relevance_score": "high"}, "relevance_score"), ({"relevance_score": True},
                                                       "relevance_score"),
])
def test_bad_link_fields_are_a_422_naming_the_field(client, entity, memory, body, field):
    full = {"entity_id": entity["id"], "memory_id": str(memory.id), **body}
    assert_error(client.post("/v1/entities/links", full, format="json"), 422,
                 "validation_error", field)
    assert not EntityLink.objects.exists()


def test_link_ids_of_another_account_or_deleted_rows_are_a_422_on_their_field(
        client, other_client, other_account, entity, memory, agent):
    theirs = create_entity(other_client, "Initech")
    their_memory = new_memory(other_account, agent, "Initech", agent_ref="their-agent")
    missing = str(uuid.uuid4())
    for entity_id, memory_id, field in [
        (theirs["id"], memory.id, "entity_id"), (missing, memory.id, "entity_id"),
        (entity["id"], their_memory.id, "memory_id"), (entity["id"], missing, "memory_id"),
    ]:
        response = client.post("/v1/entities/links", {"entity_id": entity_id,
                                                      "memory_id": str(memory_id)},
                               format="json")
        assert_error(response, 422, "validation_error", field)
    response = client.post(f"/v1/entities/{entity['id']}/link",
                           {"memory_id": str(their_memory.id)}, format="json")
    assert_error(response, 422, "validation_error", "memory_id")
    client.delete(f"/v1/memories/{memory.id}")
    assert_error(client.post("/v1/entities/links", {"entity_id": entity["id"],
                                                    "memory_id": str(memory.id)},
                             format="json"), 422, "validation_error", "memory_id")
    assert not EntityLink.objects.exists()


def test_a_link_to_an_entity_deleted_meanwhile_is_refused(client, account, entity, memory):
    row = Entity.objects.get(pk=entity["id"])
    services.entity_delete(entity=row)
    from memoryrelay_site.errors import NotFound

    with pytest.raises(NotFound):
        services.entity_link(account=account, entity=row, memory_id=memory.id)
    assert not EntityLink.objects.exists()


def test_links_only_answer_post(client):
    assert_error(client.get("/v1/entities/links"), 405, "method_not_allowed")
    assert_error(client.delete("/v1/entities/links"), 405, "method_not_allowed")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_links_of_one_pair_leave_one_link(account, api_key, agent):
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import THREADS, run_together

    entity = create_entity(make_client(api_key))
    memory = new_memory(account, agent)

    def call(i):
        path = ("/v1/entities/links" if i % 2 else f"/v1/entities/{entity['id']}/link")
        response = make_client(api_key).post(path, {"entity_id": entity["id"],
                                                    "memory_id": str(memory.id)},
                                             format="json")
        return response.status_code

    assert sorted(run_together(THREADS, call)) == [200] * (THREADS - 1) + [201]
    assert EntityLink.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_link_racing_a_memory_delete_never_outlives_it_unseen(account, api_key, agent):
    """Either the link lands first (and the delete hides it with the memory) or the delete
    lands first (and the link is a 422): never a 500, never a link on a memory the link
    request saw deleted."""
    from tests.conftest import make_client
    from tests.sessions_app.test_concurrency import run_together

    entity = create_entity(make_client(api_key))
    memories = [new_memory(account, agent, f"m{i}") for i in range(4)]

    def call(i):
        memory = memories[i // 2]
        client = make_client(api_key)
        if i % 2:
            return client.delete(f"/v1/memories/{memory.id}").status_code
        return client.post("/v1/entities/links", {"entity_id": entity["id"],
                                                  "memory_id": str(memory.id)},
                           format="json").status_code

    codes = run_together(8, call)
    assert set(codes[1::2]) == {200}
    assert set(codes[0::2]) <= {201, 422}
    assert EntityLink.objects.count() == codes[0::2].count(201)
    body = make_client(api_key).get(f"/v1/entities/{entity['id']}").json()
    assert body["memory_count"] == 0


# --- hostile input ------------------------------------------------------------------------


def test_hostile_query_parameters_are_answered_without_a_crash(client, entity, memory):
    from tests.memoryrelay_site.test_hostile_inputs import HOSTILE_PARAMS, failure

    failures = []
    for path, names in {"/v1/entities": ["entity_type", "type", "agent_id", "q", "limit",
                                         "offset", "cursor"],
                        "/v1/memories": ["entity"]}.items():
        for name in names:
            for value in HOSTILE_PARAMS:
                response = client.get(f"{path}?{name}={value}")
                if response.status_code >= 400:
                    failures.append(failure(response, f"{path}?{name}={value[:20]}"))
    assert not list(filter(None, failures)), failures


@pytest.mark.parametrize("raw", ['{"name": "a\\u0000b", "type": "person"}',
                                 '{"name": "\\udfff", "type": "person"}',
                                 '{"name": "ok", "type": "person", "metadata": {"\\udfff": 1}}',
                                 '[1, 2]', '"just a string"', '{"name": {"a": 1}}'])
def test_hostile_create_bodies_are_a_4xx(client, raw):
    response = client.generic("POST", "/v1/entities", raw.encode("utf-8", "surrogatepass"),
                              content_type="application/json")
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code, response.json()["type"])
    assert not Entity.objects.exists()
