"""API.md §1–2: auth, the one error body, request ids, limits, health."""

from __future__ import annotations

import base64
import json
import re
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings

from memoryrelay_site.models import ApiKey
from memoryrelay_site.services import api_key_create, api_key_revoke, hash_key
from tests.conftest import assert_error, make_client

# --- auth -------------------------------------------------------------------------------


def test_a_request_without_a_key_is_a_401_with_www_authenticate(anon, db):
    response = anon.get("/v1/sessions")
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [{"HTTP_AUTHORIZATION": "Bearer mem_prod_wrong"},
                                    {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
                                    {"HTTP_AUTHORIZATION": "Bearer "},
                                    {"HTTP_X_API_KEY": "not-a-key"},
                                    {"HTTP_X_API_KEY": "mem_" + "x" * 5000}])
def test_a_wrong_key_is_a_401(anon, db, header):
    response = anon.get("/v1/sessions", **header)
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == "Bearer"


def test_the_x_api_key_header_authenticates_too(api_key):
    assert make_client(api_key, header="x-api-key").get("/v1/sessions").status_code == 200


def test_a_revoked_key_is_a_401_and_other_keys_keep_working(account):
    key, raw = api_key_create(user=account)
    _, other = api_key_create(user=account)
    api_key_revoke(key=key)
    assert_error(make_client(raw).get("/v1/sessions"), 401, "unauthorized")
    assert make_client(other).get("/v1/sessions").status_code == 200


def test_a_key_of_an_inactive_account_is_a_401(account, api_key):
    account.is_active = False
    account.save()
    assert_error(make_client(api_key).get("/v1/sessions"), 401, "unauthorized")


def test_keys_are_mem_prod_with_32_plus_random_characters_and_stored_hashed(account):
    key, raw = api_key_create(user=account)
    assert re.fullmatch(r"mem_prod_[A-Za-z0-9_\-]{32,}", raw)
    assert key.key_hash == hash_key(raw) and raw not in key.key_hash
    assert key.prefix == raw[:12]
    assert api_key_create(user=account)[1] != raw


def test_create_api_key_creates_the_account_and_prints_the_key_last(db):
    out = StringIO()
    call_command("create_api_key", "--user", "bob", "--name", "laptop", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("mem_prod_")
    key = ApiKey.objects.get(key_hash=hash_key(raw))
    assert key.user.username == "bob" and key.name == "laptop"
    assert make_client(raw).get("/v1/sessions").status_code == 200


def test_ensure_local_key_creates_one_key_only_on_an_empty_database(db):
    first, second = StringIO(), StringIO()
    call_command("ensure_local_key", stdout=first)
    call_command("ensure_local_key", stdout=second)
    raw = re.search(r"MEMORYRELAY_API_KEY=(\S+)", first.getvalue()).group(1)
    assert "curl" in first.getvalue() and second.getvalue() == ""
    assert ApiKey.objects.count() == 1
    assert make_client(raw).get("/v1/sessions").status_code == 200


def test_ensure_local_key_makes_no_key_for_a_server_whose_port_is_taken(db):
    """The key is shown once: it was printed, then gunicorn could not bind, and the next
    `make run` printed nothing."""
    import socket

    from django.core.management.base import CommandError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1 port {port}"):
            call_command("ensure_local_key", "--host", "127.0.0.1", "--port", port,
                         stdout=StringIO())
    assert not ApiKey.objects.exists()
    out = StringIO()
    call_command("ensure_local_key", "--host", "::1", "--port", port, stdout=out)
    assert f"http://[::1]:{port}/v1/sessions" in out.getvalue()


# --- tenancy ----------------------------------------------------------------------------


def test_another_accounts_key_sees_none_of_the_data_on_any_endpoint(
    client, other_client, agent, session, memory
):
    for path in (f"/v1/sessions/{session.id}", f"/v1/memories/{memory.id}",
                 f"/v1/agents/{agent.id}", "/v1/agents/my-assistant",
                 f"/v1/sessions/{session.id}?include_memories=true"):
        assert_error(other_client.get(path), 404, "not_found")
    for path in (f"/v1/sessions/{session.id}/end", f"/v1/sessions/{session.id}/summarize"):
        assert_error(other_client.post(path, {}, format="json"), 404, "not_found")
    assert_error(other_client.put(f"/v1/sessions/{session.id}/end", {}, format="json"),
                 404, "not_found")
    for path in (f"/v1/memories/{memory.id}", f"/v1/agents/{agent.id}"):
        assert_error(other_client.patch(path, {"metadata": {"x": 1}}, format="json"),
                     404, "not_found")
        assert_error(other_client.put(path, {"metadata": {"x": 1}}, format="json"),
                     404, "not_found")
    for path in (f"/v1/sessions/{session.id}", f"/v1/memories/{memory.id}",
                 f"/v1/agents/{agent.id}"):
        assert_error(other_client.delete(path), 404, "not_found")
    for path in ("/v1/sessions", "/v1/memories", "/v1/agents",
                 f"/v1/memories?session_id={session.id}", f"/v1/sessions?agent_id={agent.id}",
                 "/v1/sessions?agent_id=my-assistant", "/v1/memories?agent_id=my-assistant"):
        body = other_client.get(path).json()
        assert body["data"] == [] and body["total_count"] == 0, path
    # Writing with the first account's agent name creates the second account's own agent.
    made = other_client.post("/v1/memories", {"content": "x", "agent_id": "my-assistant"},
                             format="json").json()
    assert made["agent_id"] != str(agent.id)
    # Nothing of the first account changed.
    body = client.get(f"/v1/sessions/{session.id}").json()
    assert body["status"] == "active" and body["memory_count"] == 1
    assert client.get(f"/v1/agents/{agent.id}").json()["metadata"] == {}


# --- errors -----------------------------------------------------------------------------


def test_malformed_json_is_a_400_in_the_error_body(client):
    response = client.generic("POST", "/v1/sessions", "{not json",
                              content_type="application/json")
    assert_error(response, 400, "validation_error")


def test_a_json_body_that_is_not_an_object_is_a_422(client):
    response = client.generic("POST", "/v1/sessions", "[1, 2]", content_type="application/json")
    assert_error(response, 422, "validation_error")


def test_a_wrong_method_is_a_405_in_the_error_body(client, session):
    assert_error(client.patch(f"/v1/sessions/{session.id}", {}, format="json"), 405,
                 "method_not_allowed")
    assert_error(client.get(f"/v1/sessions/{session.id}/end"), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v2/icm/capabilities",
                                  "/v1/entities/links/extra", "/favicon.ico"])
def test_an_unknown_route_is_a_404_in_the_error_body(client, path):
    assert_error(client.get(path), 404, "not_found")


def test_a_crash_is_a_500_in_the_error_body_without_a_traceback(client, monkeypatch):
    from sessions_app import views

    def boom(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views.services, "session_create", boom)
    response = client.post("/v1/sessions", {}, format="json")
    body = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode() and body["message"]


@override_settings(MEMORYRELAY_MAX_BODY_BYTES=2000)
def test_a_body_over_the_size_limit_is_a_413(client):
    response = client.post("/v1/sessions", {"title": "x" * 3000}, format="json")
    assert_error(response, 413, "payload_too_large")


def test_every_response_carries_a_request_id_and_echoes_a_sane_client_one(client, anon, db):
    ok = client.get("/v1/sessions")
    assert re.fullmatch(r"req_[0-9a-f]{32}", ok["X-Request-ID"])
    assert client.get("/v1/sessions", HTTP_X_REQUEST_ID="trace-123")["X-Request-ID"] == (
        "trace-123"
    )
    evil = client.get("/v1/sessions", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"]
    assert evil.startswith("req_")
    assert anon.get("/v1/health")["X-Request-ID"].startswith("req_")


def test_validation_errors_list_every_bad_field(client):
    body = assert_error(client.post("/v1/sessions", {"title": 1, "metadata": 2},
                                    format="json"), 422, "validation_error")
    assert {d["field"] for d in body["details"]} == {"title", "metadata"}
    assert all(d["message"] for d in body["details"])


def test_nul_characters_are_refused_not_crashed_on(client):
    response = client.post("/v1/sessions", {"title": "a\x00b"}, format="json")
    assert_error(response, 422, "validation_error", "title")


# --- hostile inputs (issue 7; every endpoint is fuzzed in test_hostile_inputs.py) ------------

DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000


@pytest.mark.parametrize("path, text, field", [
    ("/v1/memories", '{"agent_id": "a", "content": "c", "metadata": ' + DEEP_OBJECT + "}",
     "metadata"),
    ("/v1/memories", '{"agent_id": "a", "content": ' + "[" * 2000 + "]" * 2000 + "}",
     "content"),
    ("/v1/memories/search", '{"query": "q", "metadata_filter": ' + DEEP_OBJECT + "}",
     "metadata_filter"),
    ("/v1/memories/batch", '{"memories": [{"content": "c", "metadata": ' + DEEP_OBJECT + "}]}",
     "memories"),
    ("/v1/sessions", "[" * 2000 + "]" * 2000, "body"),
    ("/v1/sessions", '{"title": "\\udfff"}', "title"),
    ("/v1/sessions", '{"metadata": {"k": "\\udfff"}}', "metadata.k"),
    ("/v1/agents", '{"name": "a", "metadata": {"\\ud800": 1}}', "metadata.\\ud800"),
    ("/v1/memories", '{"agent_id": "a", "content": "x \\udfff"}', "content"),
])
def test_deep_nesting_and_lone_surrogates_are_a_422_naming_the_field(client, path, text,
                                                                     field):
    response = client.generic("POST", path, text.encode(), content_type="application/json")
    assert_error(response, 422, "validation_error", field)


def test_metadata_deeper_than_32_levels_is_a_422_on_metadata(client):
    metadata: dict = {}
    for _ in range(32):
        metadata = {"k": metadata}
    response = client.post("/v1/sessions", {"metadata": metadata}, format="json")
    assert_error(response, 422, "validation_error", "metadata")


@pytest.mark.parametrize("path", ["/v1/memories", "/v1/agents", "/v1/sessions"])
@pytest.mark.parametrize("forged", [
    {"t": "2026-01-01T00:00:00+00:00", "id": "not-a-uuid"},
    {"t": "2026-01-01T00:00:00", "id": "00000000-0000-0000-0000-000000000000"},
    {"t": 1, "id": 10**40},
    [],
])
def test_a_forged_cursor_is_a_422_on_cursor(client, path, forged):
    cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
    assert_error(client.get(path, {"cursor": cursor}), 422, "validation_error", "cursor")


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_nul_in_a_path_segment_is_a_404(client, agent, method):
    response = client.generic(method.upper(), "/v1/agents/a%00b", b"{}",
                              content_type="application/json")
    assert_error(response, 404, "not_found")


# --- health -----------------------------------------------------------------------------


def test_health_needs_no_key_and_reports_every_field(anon, db):
    response = anon.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["api_version"] == "v1"
    assert body["services"]["database"] == "up"
    assert all(isinstance(v, str) for v in body["services"].values())
    assert isinstance(body["timestamp"], int) and isinstance(body["uptime_seconds"], int)
    assert isinstance(body["version"], str) and isinstance(body["environment"], str)


def test_health_is_503_unhealthy_when_the_database_is_down(anon, db, monkeypatch):
    from memoryrelay_site import pg, views

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(views.connection, "cursor", refuse)  # SQLite's probe
        patch.setattr(pg.DeadlineConnection, "connect", refuse)  # PostgreSQL's own connection
        response = anon.get("/v1/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["services"]["database"] == "down"


def test_uuid_path_ids_are_case_insensitive(client, session):
    assert client.get(f"/v1/sessions/{str(session.id).upper()}").status_code == 200
    assert_error(client.get(f"/v1/sessions/{uuid.uuid4()}x"), 404, "not_found")


def test_an_update_that_changes_nothing_writes_nothing(client):
    """A PATCH repeating the stored values moved updated_at (and, for a memory, its place
    in a backup's "newer wins" and a context bundle's recency): nothing was written."""
    from entities_app.models import Entity
    from memories_app.models import Memory
    from sessions_app.models import Agent

    memory = client.post("/v1/memories", {"content": "Keep it", "agent_id": "still",
                                          "metadata": {"a": 1}}, format="json").json()["id"]
    agent = str(Agent.objects.get(name="still").pk)
    entity = client.post("/v1/entities", {"name": "Acme", "entity_type": "organization",
                                          "metadata": {"b": 2}}, format="json").json()["id"]
    same = [(Memory, memory, f"/v1/memories/{memory}", {"content": "Keep it",
                                                        "metadata": {"a": 1}}),
            (Agent, agent, f"/v1/agents/{agent}", {"name": "still", "metadata": {}}),
            (Entity, entity, f"/v1/entities/{entity}", {"name": "Acme", "metadata": {"b": 2}})]
    for model, pk, url, body in same:
        before = model.objects.get(pk=pk).updated_at
        assert client.patch(url, body, format="json").status_code == 200, url
        assert model.objects.get(pk=pk).updated_at == before, url
    before = Memory.objects.get(pk=memory).updated_at
    client.patch(f"/v1/memories/{memory}", {"metadata": {"a": 2}}, format="json")
    assert Memory.objects.get(pk=memory).updated_at > before


@pytest.mark.parametrize(("year", "shown"), [(1, "0001"), (999, "0999"), (2026, "2026")])
def test_timestamps_are_iso_8601_with_four_year_digits_in_every_year(client, session,
                                                                      year, shown):
    """A restored backup may carry any year; ISO 8601 always writes four digits."""
    from datetime import UTC, datetime

    from sessions_app.models import Session

    Session.objects.filter(pk=session.pk).update(
        created_at=datetime(year, 6, 1, 8, 5, 9, 123456, tzinfo=UTC))
    for body in (client.get(f"/v1/sessions/{session.pk}").json(),
                 client.get("/v1/sessions").json()["data"][0]):
        assert body["created_at"] == f"{shown}-06-01T08:05:09Z"


def test_api_answers_are_kept_by_no_cache_and_vary_by_key(client, anon, db):
    for response in (client.get("/v1/memories"), client.get("/v1/agents/nobody"),
                     anon.get("/v1/health"), anon.get("/v1/memories")):
        assert response["Cache-Control"] == "no-store"
        vary = {v.strip().lower() for v in response["Vary"].split(",")}
        assert {"authorization", "x-api-key"} <= vary
