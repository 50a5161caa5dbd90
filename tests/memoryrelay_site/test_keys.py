"""Keys stay secret: shown once on the admin page (never in a cookie), revocable from the
command line, and optionally expiring."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from memoryrelay_site.models import SCOPES, ApiKey
from memoryrelay_site.services import api_key_create, api_key_revoke
from tests.conftest import assert_error, make_client

ADD = "admin:memoryrelay_site_apikey_add"
WHOLE_KEY = re.compile(r"mem_prod_[\w-]{32,}")


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def shown_key(response) -> str:
    return re.search(r'id="api-key"[^>]*>(mem_prod_[\w-]+)<', response.content.decode())[1]


def cookie_texts(response) -> list[str]:
    """Every cookie value the response set, and what the messages cookie decodes to."""
    texts = [morsel.value for morsel in response.cookies.values()]
    texts += [header for name, header in response.items() if name.lower() == "set-cookie"]
    messages = response.cookies.get("messages")
    if messages is not None:
        decoded = CookieStorage(response.wsgi_request)._decode(messages.value) or []
        texts += [str(m) for m in decoded]
    return texts


def test_a_key_added_in_the_admin_is_shown_on_the_page_and_travels_in_no_cookie(
        admin_client, account):
    response = admin_client.post(reverse(ADD), {"user": account.pk, "name": "staff-made",
                                                "scopes": ["read", "write"]})
    assert not any(WHOLE_KEY.search(text) for text in cookie_texts(response))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    raw = shown_key(response)
    assert raw not in str(dict(admin_client.session.items()))
    assert make_client(raw).get("/v1/sessions").status_code == 200
    followed = admin_client.get(reverse("admin:memoryrelay_site_apikey_changelist"))
    assert raw not in followed.content.decode()  # shown once


def test_the_admin_sets_a_keys_scopes_expiry_and_rate_limit_when_adding_and_editing(admin_client,
                                                                            account):
    admin_client.post(reverse(ADD), {"user": account.pk, "name": "limited",
                                     "expires_at_0": "2031-01-02", "expires_at_1": "03:04:05",
                                     "rate_limit_per_minute": "7", "scopes": ["read"]})
    key = ApiKey.objects.get(name="limited")
    assert key.rate_limit_per_minute == 7 and key.scopes == ["read"]
    assert key.expires_at.isoformat() == "2031-01-02T03:04:05+00:00"
    change = reverse("admin:memoryrelay_site_apikey_change", args=[key.pk])
    api_key_revoke(key=key)
    response = admin_client.post(change, {"name": "limited", "expires_at_0": "",
                                          "expires_at_1": "", "rate_limit_per_minute": "0",
                                          "scopes": ["write", "read", "delete"]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.rate_limit_per_minute == 0 and key.expires_at is None
    assert key.scopes == ["read", "write", "delete"]
    assert key.revoked_at is not None


def test_an_expired_key_is_a_401_that_says_it_expired(account):
    key, raw = api_key_create(user=account, expires_at=timezone.now() - timedelta(seconds=1))
    for header in ("bearer", "x-api-key"):
        response = make_client(raw, header).get("/v1/sessions")
        body = assert_error(response, 401, "unauthorized")
        assert "expired" in body["message"]
        assert response["WWW-Authenticate"] == "Bearer"


def test_a_key_before_its_expiry_works_and_an_unknown_key_is_not_called_expired(account):
    _, raw = api_key_create(user=account, expires_at=timezone.now() + timedelta(hours=1))
    assert make_client(raw).get("/v1/sessions").status_code == 200
    wrong = make_client("mem_prod_" + "x" * 40).get("/v1/sessions")
    assert "expired" not in assert_error(wrong, 401, "unauthorized")["message"]


def test_create_api_key_with_expires_days_sets_the_expiry(db):
    out = run("create_api_key", "--user", "carol", "--expires-days", "30", "--rate-limit", "9")
    raw = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(user__username="carol")
    assert key.rate_limit_per_minute == 9 and "expires" in out
    assert timedelta(days=29, hours=23) < key.expires_at - timezone.now() <= timedelta(days=30)
    assert make_client(raw).get("/v1/sessions").status_code == 200


def test_create_api_key_gives_every_scope_unless_told_and_refuses_an_unknown_one(db):
    run("create_api_key", "--user", "carol")
    assert ApiKey.objects.get(user__username="carol").scopes == list(SCOPES)
    out = run("create_api_key", "--user", "dave", "--scopes", "read, write,read")
    assert "scopes read, write" in out
    raw = out.strip().splitlines()[-1]
    assert make_client(raw).get("/v1/sessions").status_code == 200
    assert_error(make_client(raw).get("/v1/keys"), 403, "forbidden")
    for bad in ("root", ",", "read,sudo"):
        with pytest.raises(CommandError, match="--scopes"):
            run("create_api_key", "--user", "erin", "--scopes", bad)
    assert not ApiKey.objects.filter(user__username="erin").exists()


@pytest.mark.parametrize("args", [["--expires-days", "0"], ["--rate-limit", "-1"],
                                  ["--expires-days", "99999999"], ["--name", "n" * 256]])
def test_create_api_key_refuses_a_meaningless_expiry_limit_or_name(db, args):
    with pytest.raises(CommandError):
        run("create_api_key", "--user", "carol", *args)
    assert not ApiKey.objects.exists()


def test_create_api_key_refuses_a_user_name_too_long_for_an_account(db):
    with pytest.raises(CommandError, match="--user must be at most 150"):
        run("create_api_key", "--user", "u" * 151)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["ops team", "bad user!", "tab\there"])
def test_create_api_key_refuses_a_new_account_name_outside_djangos_rule(db, name):
    """Such a name could not be typed into the admin's form either; an account that already
    has one keeps getting keys."""
    with pytest.raises(CommandError, match="--user: Enter a valid username"):
        run("create_api_key", "--user", name)
    assert not ApiKey.objects.exists()
    get_user_model().objects.create(username=name)
    assert "Created API key" in run("create_api_key", "--user", name)


def test_revoke_api_key_revokes_the_key_its_prefix_names(account, api_key):
    out = run("revoke_api_key", api_key[:12])
    assert "Revoked" in out and api_key[:12] in out
    assert_error(make_client(api_key).get("/v1/sessions"), 401, "unauthorized")


def test_revoking_twice_keeps_the_first_revoked_at(account, api_key):
    run("revoke_api_key", api_key[:12])
    first = ApiKey.objects.get().revoked_at
    assert "already revoked" in run("revoke_api_key", api_key[:12])
    assert ApiKey.objects.get().revoked_at == first


@pytest.mark.parametrize("ref", ["id", "whole key"])
def test_revoke_api_key_also_takes_the_keys_id_or_the_whole_key(account, api_key, ref):
    key = ApiKey.objects.get()
    run("revoke_api_key", str(key.pk) if ref == "id" else api_key)
    assert ApiKey.objects.get().revoked_at is not None


def test_revoke_api_key_with_an_ambiguous_prefix_changes_nothing_and_lists_the_matches(
        account):
    keys = [api_key_create(user=account, name=f"k{i}")[0] for i in range(2)]
    ApiKey.objects.update(prefix="mem_prod_Ab3")
    with pytest.raises(CommandError, match="2 keys match") as refused:
        run("revoke_api_key", "mem_prod_Ab3")
    assert all(str(k.pk) in str(refused.value) for k in keys)
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


def test_a_revoked_old_key_does_not_make_a_live_one_ambiguous(account):
    old, live = (api_key_create(user=account, name=n)[0] for n in ("old", "live"))
    ApiKey.objects.update(prefix="mem_prod_Ab3")
    api_key_revoke(key=old)
    run("revoke_api_key", "mem_prod_Ab3")
    live.refresh_from_db()
    assert live.revoked_at is not None


@pytest.mark.parametrize("ref", ["mem_prod_zzz", " ", "mem_prod_" + "y" * 43])
def test_revoke_api_key_with_an_unknown_prefix_is_an_error(account, api_key, ref):
    ApiKey.objects.update(prefix="mem_prod_Ab3")
    with pytest.raises(CommandError, match="No API key matches"):
        run("revoke_api_key", ref)
    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize("ref", ["m", "mem_prod_", "mem_prod_Ab"])
def test_a_reference_shorter_than_the_visible_prefix_names_no_key(account, api_key, ref):
    """"mem_prod_" (or "m") revoked the one key of a local install, unasked."""
    ApiKey.objects.update(prefix="mem_prod_Ab3")
    with pytest.raises(CommandError, match="whole visible prefix"):
        run("revoke_api_key", ref)
    assert ApiKey.objects.get().revoked_at is None


def test_a_reference_longer_than_the_kept_prefix_says_how_to_name_the_key(account, api_key):
    with pytest.raises(CommandError, match=f"first 12 characters.*{api_key[:12]}"):
        run("revoke_api_key", api_key[:14])
    assert ApiKey.objects.get().revoked_at is None
    run("revoke_api_key", api_key[:12])
    assert ApiKey.objects.get().revoked_at is not None


def test_revoke_api_key_dry_run_changes_nothing(account, api_key):
    assert "Would revoke" in run("revoke_api_key", api_key[:12], "--dry-run")
    assert make_client(api_key).get("/v1/sessions").status_code == 200


def test_the_admins_add_form_offers_every_scope_ticked(admin_client):
    page = admin_client.get(reverse(ADD)).content.decode()
    for scope in SCOPES:
        assert re.search(rf'<input[^>]*value="{scope}"[^>]*checked', page), scope
