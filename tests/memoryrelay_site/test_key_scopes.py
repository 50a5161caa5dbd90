"""Scoped keys: what each scope allows on every route, and ``/v1/keys`` (admin only)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from memoryrelay_site.auth import ANY_SCOPE, needed_scope
from memoryrelay_site.models import SCOPES, ApiKey
from memoryrelay_site.services import api_key_create
from tests.conftest import assert_error, make_client
from tests.memoryrelay_site.test_openapi import Conformance
from tests.memoryrelay_site.test_openapi import schema as schema  # noqa: F401 - fixture
from tests.sessions_app.test_concurrency import run_together

# Every route of the API and the scope each method needs. A new route must be added here,
# with the scope it needs (a search sent as POST is a read): the last test walks the URLs.
ROUTE_SCOPES = {
    "v1/quota": {"GET": ANY_SCOPE},
    "v1/keys": {"GET": "admin", "POST": "admin"},
    "v1/keys/{id}": {"GET": "admin", "DELETE": "admin"},
    "v1/decisions": {"GET": "read", "POST": "write"},
    "v1/decisions/check": {"GET": "read"},
    "v1/decisions/{id}": {"GET": "read", "DELETE": "delete"},
    "v1/decisions/{id}/supersede": {"POST": "write"},
    "v1/patterns": {"GET": "read", "POST": "write"},
    "v1/patterns/search": {"GET": "read"},
    "v1/patterns/suggest": {"GET": "read"},
    "v1/patterns/{id}": {"GET": "read", "DELETE": "delete"},
    "v1/patterns/{id}/adopt": {"POST": "write"},
    "v1/projects/impact-analysis": {"POST": "read"},
    "v1/projects/shared-patterns": {"GET": "read"},
    "v1/projects/{slug}/context": {"GET": "read"},
    "v1/extraction/settings": {"GET": "admin"},
    "v1/extraction/keys": {"POST": "admin"},
    "v1/extraction/keys/deactivate-all": {"POST": "admin"},
    "v1/extraction/keys/{id}/activate": {"POST": "admin"},
    "v1/extraction/keys/{id}": {"DELETE": "admin"},
    "v1/memories/backfill-entities": {"POST": "write"},
    "v1/memories/{id}/extract-entities": {"POST": "write"},
    "v1/memories/{id}/extraction-status": {"GET": "read"},
    "v1/entities/{id}/relationships": {"GET": "read"},
    "v1/entities/{id}/neighborhood": {"GET": "read"},
    "v1/entities": {"GET": "read", "POST": "write"},
    "v1/entities/links": {"POST": "write"},
    "v1/entities/{id}": {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"},
    "v1/entities/{id}/link": {"POST": "write"},
    "v1/embed": {"POST": "read"},
    "v1/sessions": {"GET": "read", "POST": "write"},
    "v1/sessions/get-or-create": {"POST": "write"},
    "v1/sessions/{id}": {"GET": "read", "DELETE": "delete"},
    "v1/sessions/{id}/end": {"POST": "write", "PUT": "write"},
    "v1/sessions/{id}/summarize": {"POST": "write"},
    "v1/memories": {"GET": "read", "POST": "write"},
    "v1/memories/batch": {"POST": "write"},
    "v1/memories/context": {"POST": "read"},
    "v1/memories/maintenance": {"POST": "admin"},
    "v1/memories/search": {"POST": "read"},
    "v1/memories/{id}": {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"},
    "v1/memories/{id}/importance": {"PUT": "write"},
    "v1/agents": {"GET": "read", "POST": "write"},
    "v1/agents/{id}": {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"},
    "v1/agents/{id}/stats": {"GET": "read"},
    "v1/projects": {"GET": "read", "POST": "write"},
    "v1/projects/{slug}": {"GET": "read", "PUT": "write", "PATCH": "write",
                           "DELETE": "delete"},
    "v1/projects/{slug}/dependencies": {"GET": "read"},
    "v1/projects/{slug}/dependents": {"GET": "read"},
    "v1/projects/{slug}/related": {"GET": "read"},
    "v1/projects/{slug}/relationships": {"POST": "write"},
    "v2/memories": {"POST": "write"},
    "v2/memories/{id}/status": {"GET": "read"},
    "v2/context/build": {"POST": "read"},
    "v2/context": {"POST": "read"},
}


def key_with(account, *scopes: str) -> str:
    return api_key_create(user=account, name="+".join(scopes), scopes=list(scopes))[1]


def concrete(path: str) -> str:
    return "/" + path.replace("{id}", str(uuid.uuid4())).replace("{slug}", "northrelay")


# --- what each scope allows --------------------------------------------------------------------


@pytest.mark.parametrize("route,method,scope", [
    (route, method, scope) for route, methods in ROUTE_SCOPES.items()
    for method, scope in methods.items()])
def test_a_key_without_the_scope_a_route_needs_is_a_403_that_names_it(account, route, method,
                                                                        scope):
    if scope == ANY_SCOPE:  # every key, whatever its one scope (a write-only one's quota)
        for one in SCOPES:
            response = make_client(key_with(account, one)).generic(
                method, concrete(route), "{}", "application/json")
            assert response.status_code not in (401, 403), (one, response.content)
        return
    others = [s for s in SCOPES if s not in (scope, "admin")]
    client = make_client(key_with(account, *others)) if others else None
    if client is not None:  # every scope but the one needed (and admin): refused
        response = client.generic(method, concrete(route), "{}", "application/json")
        body = assert_error(response, 403, "forbidden")
        assert repr(scope) in body["message"]
    # With the scope (or admin, which allows everything), not a 403 (a 404, 422, ... at most).
    for allowed in {scope, "admin"}:
        response = make_client(key_with(account, allowed)).generic(
            method, concrete(route), "{}", "application/json")
        assert response.status_code not in (401, 403), (allowed, response.content)


def test_a_read_only_key_reads_and_searches_but_cannot_write_or_delete(account, memory):
    reader = make_client(key_with(account, "read"))
    assert reader.get("/v1/memories").json()["total_count"] == 1
    assert reader.post("/v1/memories/search", {"query": "retry"}, format="json").status_code == 200
    assert_error(reader.post("/v1/memories", {"content": "x", "agent_id": "a"}, format="json"),
                 403, "forbidden")
    assert_error(reader.delete(f"/v1/memories/{memory.id}"), 403, "forbidden")
    assert_error(reader.patch(f"/v1/memories/{memory.id}", {"content": "changed"},
                              format="json"), 403, "forbidden")
    memory.refresh_from_db()
    assert memory.deleted_at is None and memory.content != "changed"


def test_a_write_key_cannot_delete_and_a_delete_key_can(account, memory):
    writer = make_client(key_with(account, "read", "write"))
    assert_error(writer.delete(f"/v1/memories/{memory.id}"), 403, "forbidden")
    deleter = make_client(key_with(account, "delete"))
    assert deleter.delete(f"/v1/memories/{memory.id}").json()["deleted"] is True


def test_a_missing_or_wrong_key_is_still_a_401_not_a_403(db, anon):
    assert_error(anon.get("/v1/keys"), 401, "unauthorized")
    assert_error(make_client("mem_prod_" + "x" * 40).get("/v1/keys"), 401, "unauthorized")


def test_keys_made_before_scopes_existed_and_operator_keys_may_do_everything(account):
    key, raw = api_key_create(user=account)
    assert key.scopes == list(SCOPES)
    assert make_client(raw).get("/v1/keys").status_code == 200
    field = ApiKey._meta.get_field("scopes")
    assert field.get_default() == list(SCOPES)  # what the migration gave existing keys


# --- /v1/keys ------------------------------------------------------------------------------------


@pytest.fixture
def admin(account):
    return make_client(key_with(account, "admin"))


def test_creating_a_key_answers_it_once_with_its_info_and_it_works_with_its_scopes(admin):
    response = admin.post("/v1/keys", {"name": "ci-reader", "scopes": ["read"],
                                       "expires_days": 30}, format="json")
    assert response.status_code == 201
    body = response.json()
    raw, info = body["key"], body["key_info"]
    assert raw.startswith("mem_prod_") and len(raw) >= 40
    assert info["key_prefix"] == raw[:12] and info["name"] == "ci-reader"
    assert info["scopes"] == ["read"] and info["is_active"] is True
    assert info["revoked_at"] is None and info["last_used_at"] is None
    expires = timezone.datetime.fromisoformat(info["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert info["created_at"].endswith("Z")
    made = make_client(raw)
    assert made.get("/v1/memories").status_code == 200
    assert_error(made.post("/v1/memories", {"content": "x", "agent_id": "a"}, format="json"),
                 403, "forbidden")
    assert raw not in str(admin.get("/v1/keys").json())  # never answered again


def test_a_key_created_without_scopes_reads_and_writes(admin):
    body = admin.post("/v1/keys", {}, format="json").json()
    assert body["key_info"]["scopes"] == ["read", "write"]
    assert body["key_info"]["expires_at"] is None and body["key_info"]["name"] == ""
    made = make_client(body["key"])
    assert made.post("/v1/memories", {"content": "x", "agent_id": "a"},
                     format="json").status_code == 201
    assert_error(made.get("/v1/keys"), 403, "forbidden")  # not admin: cannot make more keys


def test_scopes_named_twice_are_kept_once(admin):
    body = admin.post("/v1/keys", {"scopes": ["write", "read", "write"]}, format="json").json()
    assert body["key_info"]["scopes"] == ["write", "read"]


@pytest.mark.parametrize("body,field", [
    ({"scopes": []}, "scopes"),
    ({"scopes": ["superuser"]}, "scopes.0"),
    ({"scopes": "read"}, "scopes"),
    ({"scopes": ["read", None]}, "scopes.1"),
    ({"scopes": [["read"]]}, "scopes.0"),
    ({"scopes": ["read"] * 17}, "scopes"),
    ({"expires_days": 0}, "expires_days"),
    ({"expires_days": 366}, "expires_days"),
    ({"expires_days": "30"}, "expires_days"),
    ({"expires_days": True}, "expires_days"),
    ({"expires_days": 1.5}, "expires_days"),
    ({"expires_days": 10**30}, "expires_days"),
    ({"rate_limit_per_minute": -1}, "rate_limit_per_minute"),
    ({"name": "n" * 256}, "name"),
    ({"name": 7}, "name"),
    ({"name": "nul\x00"}, "name"),
])
def test_a_bad_key_request_is_a_422_naming_the_field_and_makes_no_key(admin, account, body,
                                                                        field):
    before = ApiKey.objects.count()
    assert_error(admin.post("/v1/keys", body, format="json"), 422, "validation_error", field)
    assert ApiKey.objects.count() == before


def test_the_list_holds_the_accounts_keys_newest_first_and_no_other_accounts(
        admin, account, other_account, max_queries):
    api_key_create(user=other_account, name="mallory's")
    for name in ("one", "two", "three"):
        admin.post("/v1/keys", {"name": name}, format="json")
    with max_queries(4):  # key, (last used), count, page
        body = admin.get("/v1/keys", {"limit": 2}).json()
    assert body["object"] == "list" and body["total_count"] == 4 and body["has_more"] is True
    assert [k["name"] for k in body["data"]] == ["three", "two"]
    rest = admin.get("/v1/keys", {"cursor": body["next_cursor"]}).json()
    assert [k["name"] for k in rest["data"]] == ["one", "admin"]
    assert not any("hash" in field for k in body["data"] for field in k)


def test_reading_and_revoking_a_key_and_another_accounts_key_is_a_404(
        admin, account, other_account, max_queries):
    made = admin.post("/v1/keys", {"name": "temp"}, format="json").json()
    key_id = made["key_info"]["id"]
    with max_queries(2):
        assert admin.get(f"/v1/keys/{key_id}").json()["name"] == "temp"
    revoked = admin.delete(f"/v1/keys/{key_id}").json()
    assert revoked["revoked"] is True and revoked["key_info"]["is_active"] is False
    assert_error(make_client(made["key"]).get("/v1/memories"), 401, "unauthorized")
    again = admin.delete(f"/v1/keys/{key_id}").json()  # twice: the first revoked_at stays
    assert again["revoked_at"] == revoked["revoked_at"]
    theirs, raw = api_key_create(user=other_account)
    assert_error(admin.get(f"/v1/keys/{theirs.pk}"), 404, "not_found")
    assert_error(admin.delete(f"/v1/keys/{theirs.pk}"), 404, "not_found")
    assert make_client(raw).get("/v1/memories").status_code == 200  # untouched
    assert_error(admin.get("/v1/keys/not-a-uuid"), 404, "not_found")


def test_an_admin_key_may_revoke_itself_and_is_refused_from_then_on(account):
    raw = key_with(account, "admin")
    client = make_client(raw)
    own = ApiKey.objects.get(name="admin")
    assert client.delete(f"/v1/keys/{own.pk}").status_code == 200
    assert_error(client.get("/v1/keys"), 401, "unauthorized")


def test_revoking_a_key_leaves_the_keys_it_made_working(account):
    """A choice (README): rotating a dashboard's admin key must not cut off the agents'
    keys it handed out."""
    maker_raw = key_with(account, "admin")
    maker = make_client(maker_raw)
    made = maker.post("/v1/keys", {"name": "agent-1", "scopes": ["read"]},
                      format="json").json()["key"]
    own = ApiKey.objects.get(name="admin")
    assert maker.delete(f"/v1/keys/{own.pk}").status_code == 200
    assert_error(maker.get("/v1/keys"), 401, "unauthorized")
    assert make_client(made).get("/v1/memories").status_code == 200


# --- every route is classified -------------------------------------------------------------------


def _api_routes():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield (prefix + str(pattern.pattern)).lstrip("^"), pattern.callback
    for path, callback in walk(get_resolver().url_patterns):
        if not path.startswith(("v1/", "v2/")) or "format" in path or "openapi" in path:
            continue
        view = getattr(callback, "cls", None)
        actions = getattr(callback, "actions", None) or {
            m: m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        yield path, view, actions


def _route_name(path: str) -> str:
    name = path.replace("^", "").replace("/?$", "").replace("?$", "")
    name = re.sub(r"\(\?P<(\w+)>[^)]*\)",
                  lambda group: "{slug}" if group[1] == "slug" else "{id}", name)
    return name.rstrip("/")


def test_every_api_route_is_in_the_table_with_the_scope_its_view_declares(rf):
    seen = set()
    for path, view_class, actions in _api_routes():
        name = _route_name(path)
        if name == "v1/health":
            continue  # no key at all
        assert name in ROUTE_SCOPES, f"{name} needs a line in ROUTE_SCOPES"
        for method, action in actions.items():
            if method == "head":
                continue  # answered as its GET
            view = view_class()
            view.action = action
            expected = ROUTE_SCOPES[name][method.upper()]
            assert needed_scope(rf.generic(method.upper(), "/"), view) == expected, (name, method)
            seen.add((name, method.upper()))
    assert seen == {(route, m) for route, methods in ROUTE_SCOPES.items() for m in methods}


def test_every_keys_response_matches_its_documented_schema(schema, admin, account):
    check = Conformance(schema)
    made = check(admin.post("/v1/keys", {"name": "n", "scopes": ["read"]}, format="json"),
                 "/v1/keys", "post")
    check(admin.post("/v1/keys", {"scopes": []}, format="json"), "/v1/keys", "post")
    check(make_client(made["key"]).get("/v1/keys"), "/v1/keys", "get")  # 403
    check(admin.get("/v1/keys"), "/v1/keys", "get")
    key_id = made["key_info"]["id"]
    check(admin.get(f"/v1/keys/{key_id}"), "/v1/keys/{id}", "get")
    check(admin.get(f"/v1/keys/{uuid.uuid4()}"), "/v1/keys/{id}", "get")
    check(admin.delete(f"/v1/keys/{key_id}"), "/v1/keys/{id}", "delete")
    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops
                  if p.startswith("/v1/keys")}
    assert documented == {(p, m) for p, m, _ in check.seen}


# --- no key escapes its limits --------------------------------------------------------------------


@pytest.fixture
def limited_admin(account):
    key, raw = api_key_create(user=account, name="limited", scopes=["admin"],
                              expires_at=timezone.now() + timedelta(days=1),
                              rate_limit_per_minute=3)
    return key, make_client(raw)


@pytest.mark.parametrize("body,field", [
    ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),  # unlimited
    ({"rate_limit_per_minute": 4}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": None}, "rate_limit_per_minute"),  # the server default, higher
    ({"expires_days": 2}, "expires_days"),
])
def test_a_key_cannot_make_a_key_laxer_than_itself(limited_admin, body, field):
    _, client = limited_admin
    assert_error(client.post("/v1/keys", body, format="json"), 422, "validation_error", field)
    assert ApiKey.objects.count() == 1


def test_a_key_made_without_limits_takes_the_making_keys(limited_admin):
    parent, client = limited_admin
    info = client.post("/v1/keys", {"scopes": ["admin"]}, format="json").json()["key_info"]
    made = ApiKey.objects.get(pk=info["id"])
    assert made.rate_limit_per_minute == 3 and made.expires_at == parent.expires_at
    tighter = client.post("/v1/keys", {"rate_limit_per_minute": 2}, format="json")
    assert tighter.json()["key_info"]["rate_limit_per_minute"] == 2


def test_an_unlimited_key_may_make_limited_and_unlimited_keys(account):
    admin = make_client(api_key_create(user=account, scopes=["admin"],
                                       rate_limit_per_minute=0)[1])
    for limit in (0, 10**6, 5):
        body = admin.post("/v1/keys", {"rate_limit_per_minute": limit, "expires_days": 365},
                          format="json").json()
        assert body["key_info"]["rate_limit_per_minute"] == limit


@pytest.mark.parametrize("field", ["scope", "expires_in_days", "daily_spend_limit_usd"])
def test_an_unknown_field_in_a_key_request_is_refused_not_ignored(admin, field):
    assert_error(admin.post("/v1/keys", {field: ["read"]}, format="json"), 422,
                 "validation_error", field)
    assert ApiKey.objects.count() == 1


def test_the_answer_holding_the_raw_key_is_never_cached(admin):
    assert admin.post("/v1/keys", {}, format="json")["Cache-Control"] == "no-store"


def test_requests_refused_for_a_scope_count_against_the_rate_limit(account):
    raw = api_key_create(user=account, scopes=["write"], rate_limit_per_minute=2)[1]
    client = make_client(raw)
    codes = [client.get("/v1/memories").status_code for _ in range(3)]
    assert codes == [403, 403, 429]


def test_a_method_the_route_does_not_serve_is_a_405_whatever_the_scopes(account):
    for scopes in (["read"], ["write"], ["delete"]):
        client = make_client(key_with(account, *scopes))
        assert_error(client.get("/v1/memories/search"), 405, "method_not_allowed")
        assert_error(client.delete("/v1/memories/search"), 405, "method_not_allowed")
        assert_error(client.put("/v1/keys"), 405, "method_not_allowed")


def test_options_describes_the_searches_a_read_only_key_may_send(account):
    reader = make_client(key_with(account, "read"))
    assert "POST" in reader.options("/v1/memories/search").json().get("actions", {})
    writer = make_client(key_with(account, "write"))
    assert "POST" not in writer.options("/v1/memories/search").json().get("actions", {})


def test_an_account_holds_at_most_the_set_number_of_keys_made_here(admin, account, settings):
    settings.MEMORYRELAY_MAX_KEYS_PER_ACCOUNT = 3
    made = [admin.post("/v1/keys", {}, format="json") for _ in range(3)]
    assert [r.status_code for r in made] == [201, 201, 409]
    assert_error(made[-1], 409, "conflict")
    assert ApiKey.objects.filter(user=account).count() == 3
    admin.delete(f"/v1/keys/{made[0].json()['key_info']['id']}")
    assert admin.post("/v1/keys", {}, format="json").status_code == 201  # revoked: room again


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_pass_the_keys_cap(account, settings):
    settings.MEMORYRELAY_MAX_KEYS_PER_ACCOUNT = 4
    raw = key_with(account, "admin")

    def call(i):
        return make_client(raw).post("/v1/keys", {"name": f"k{i}"}, format="json").status_code

    codes = run_together(10, call)
    assert sorted(codes) == [201] * 3 + [409] * 7
    assert ApiKey.objects.filter(user=account, revoked_at__isnull=True).count() == 4


def test_a_key_revoked_while_its_create_request_runs_makes_no_key(account):
    """Authenticated, then revoked before its new key is written: a 401, and no key."""
    from memoryrelay_site.services import api_key_issue

    parent = ApiKey.objects.get(pk=api_key_create(user=account, scopes=["admin"])[0].pk)
    ApiKey.objects.filter(pk=parent.pk).update(revoked_at=timezone.now())
    before = ApiKey.objects.count()
    with pytest.raises(Exception) as refused:
        api_key_issue(parent=parent, expires_at=None, rate_limit_per_minute=None, name="child",
                      scopes=["read"])
    assert getattr(refused.value, "status", None) == 401
    assert ApiKey.objects.count() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_key_is_made_by_a_key_after_its_revoke_committed(account, settings):
    settings.MEMORYRELAY_MAX_KEYS_PER_ACCOUNT = 100
    for round_ in range(3):
        parent, raw = api_key_create(user=account, name=f"parent-{round_}", scopes=["admin"])
        other = key_with(account, "admin")

        def call(i, raw=raw, parent=parent, other=other):
            if i == 0:
                return make_client(other).delete(f"/v1/keys/{parent.pk}").status_code
            return make_client(raw).post("/v1/keys", {"name": f"child-{i}"},
                                         format="json").status_code

        codes = run_together(10, call)
        assert codes[0] == 200 and set(codes[1:]) <= {201, 401}
        revoked_at = ApiKey.objects.get(pk=parent.pk).revoked_at
        late = ApiKey.objects.filter(user=account, name__startswith="child-",
                                     created_at__gt=revoked_at)
        assert not late.exists()
        ApiKey.objects.filter(name__startswith="child-").delete()
