"""An account's own extraction keys (/v1/extraction, SDK 0.4.0's ``extraction`` resource):
stored encrypted, never answered back, one active at a time, and used by the extraction of
that account's memories (the rules when the LLM fails)."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from entities_app import pipeline
from entities_app.models import EntityLink, ExtractionKey, MemoryExtraction
from memoryrelay_site import llm
from memoryrelay_site.secrets import secret_decrypt
from memoryrelay_site.services import api_key_create
from tests.conftest import assert_error, make_client
from tests.entities_app.test_extraction_llm import answer

SECRET = "sk-live-0123456789abcdefSECRET"


def add_key(client, status=201, **body):
    body = {"provider": "openai", "api_key": SECRET, "model": "gpt-4o-mini", **body}
    response = client.post("/v1/extraction/keys", body, format="json")
    assert response.status_code == status, response.content
    return response.json()


def test_a_key_is_stored_encrypted_and_never_answered_back(client, account):
    body = add_key(client, label="main")
    assert SECRET not in str(body)
    assert body["masked_key"] == "sk-…CRET" and body["is_active"] is True
    assert (body["provider"], body["model"], body["label"], body["base_url"]) == (
        "openai", "gpt-4o-mini", "main", None)
    assert body["created_at"].endswith("Z") and body["last_used_at"] is None
    row = ExtractionKey.objects.get(pk=body["id"])
    assert SECRET not in row.encrypted_key and secret_decrypt(row.encrypted_key) == SECRET
    settings_body = client.get("/v1/extraction/settings").json()
    assert SECRET not in str(settings_body)
    assert settings_body["byok_active"] and settings_body["extractor"] == "byok"
    assert settings_body["masked_api_key"] == "sk-…CRET"
    assert settings_body["base_url"] == "https://api.openai.com/v1"
    assert [k["id"] for k in settings_body["keys"]] == [body["id"]]


def test_one_key_is_active_at_a_time(client):
    first = add_key(client)
    second = add_key(client, provider="google", model="gemini-2.0-flash")
    assert (first["is_active"], second["is_active"]) == (True, False)
    activated = client.post(f"/v1/extraction/keys/{second['id']}/activate").json()
    assert activated["is_active"] is True
    active = set(ExtractionKey.objects.filter(is_active=True).values_list("pk", flat=True))
    assert active == {uuid.UUID(second["id"])}
    done = client.post("/v1/extraction/keys/deactivate-all").json()
    assert done["deactivated_count"] == 1 and done["status"] == "ok"
    settings_body = client.get("/v1/extraction/settings").json()
    assert settings_body["byok_configured"] and not settings_body["byok_active"]
    assert settings_body["extractor"] == "rules"


def test_delete_removes_the_secret_for_good(client):
    key = add_key(client)
    deleted = client.delete(f"/v1/extraction/keys/{key['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert not ExtractionKey.objects.filter(pk=key["id"]).exists()
    assert_error(client.delete(f"/v1/extraction/keys/{key['id']}"), 404, "not_found")


def test_bad_keys_are_refused_naming_the_field(client, settings):
    assert_error(client.post("/v1/extraction/keys", {"provider": "acme", "api_key": "k",
                                                     "model": "m"}, format="json"),
                 422, "validation_error", "provider")
    assert_error(client.post("/v1/extraction/keys", {"provider": "openai", "api_key": "  ",
                                                     "model": "m"}, format="json"),
                 422, "validation_error", "api_key")
    assert_error(client.post("/v1/extraction/keys", {"provider": "custom", "api_key": "k",
                                                     "model": "m"}, format="json"),
                 422, "validation_error", "base_url")
    for secret in ("sk-abc\r\nX-Injected: 1", "sk-abc\x7f", "sk-\tabc"):
        assert_error(client.post("/v1/extraction/keys", {
            "provider": "openai", "api_key": secret, "model": "m"}, format="json"),
            422, "validation_error", "api_key")
    for url in ("http://127.0.0.1:11434/v1", "https://10.0.0.5/v1", "https://localhost/v1",
                "http://llm.example.com/v1", "https://llm.example.com:99999/v1",
                "https://llm.example.com:x/v1", "https://[::1/v1",
                "https://[64:ff9b::a9fe:a9fe]/v1", "https://[2002:7f00:1::]/v1",
                "https://llm.example.com/v1?x=1", "https://llm.example.com/v1#part",
                "https://user:pass@llm.example.com/v1", "https://token@llm.example.com/v1"):
        assert_error(client.post("/v1/extraction/keys", {
            "provider": "custom", "api_key": "k", "model": "m", "base_url": url},
            format="json"), 422, "validation_error", "base_url")
    body = assert_error(client.post("/v1/extraction/keys", {
        "provider": "ollama", "api_key": "k", "model": "llama3"}, format="json"),
        422, "validation_error", "base_url")  # its default is this machine
    assert "ollama default" in body["message"] and "give a base_url" in body["message"]
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    assert add_key(client, provider="ollama", model="llama3")["base_url"] is None
    settings.MEMORYRELAY_BYOK_ENABLED = False
    assert_error(client.post("/v1/extraction/keys", {"provider": "openai", "api_key": "k",
                                                     "model": "m"}, format="json"),
                 422, "validation_error", "provider")
    assert ExtractionKey.objects.count() == 1


def test_another_accounts_key_is_a_404(client, other_client):
    key = add_key(client)
    for method, path in (("post", f"/v1/extraction/keys/{key['id']}/activate"),
                         ("delete", f"/v1/extraction/keys/{key['id']}"),
                         ("post", "/v1/extraction/keys/not-a-uuid/activate")):
        assert_error(getattr(other_client, method)(path), 404, "not_found")
    assert other_client.get("/v1/extraction/settings").json()["keys"] == []
    assert ExtractionKey.objects.filter(pk=key["id"], is_active=True).exists()


def test_the_active_key_extracts_the_accounts_memories(client, account, settings,
                                                       fake_llm):
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    fake_llm["answer"] = answer(("Maria Lopez", "person"), ("Acme Corp", "organization"))
    add_key(client, provider="custom", model="tiny-local", base_url=fake_llm["url"] + "/v1")
    memory = client.post("/v1/memories", {"agent_id": "a", "content": "Maria Lopez from "
                                          "Acme Corp moved JIRA-4812 to pgvector.",
                                          "auto_extract_entities": False},
                         format="json").json()
    queued = client.post(f"/v1/memories/{memory['id']}/extract-entities").json()
    assert (queued["extraction_method"], queued["extraction_model"]) == ("llm", "tiny-local")
    assert pipeline.extraction_run_now(memory_ids=[memory["id"]]) == 1
    run = MemoryExtraction.objects.get(memory_id=memory["id"])
    assert (run.status, run.method, run.model) == ("done", "llm", "tiny-local")
    path, auth, _ = fake_llm["requests"][0]
    assert path == "/v1/chat/completions" and auth == f"Bearer {SECRET}"
    names = set(EntityLink.objects.filter(memory_id=memory["id"])
                .values_list("entity__name", flat=True))
    assert names == {"Maria Lopez", "Acme Corp"}
    assert ExtractionKey.objects.get().last_used_at is not None

    fake_llm["status"] = 500  # the LLM fails: the rules answer, and say so
    assert pipeline.extraction_run_now(memory_ids=[memory["id"]]) == 1
    run.refresh_from_db()
    assert run.method == "rules"
    assert "JIRA-4812" in set(EntityLink.objects.filter(memory_id=memory["id"])
                              .values_list("entity__name", flat=True))


def test_a_confidential_memory_is_never_sent_to_the_accounts_llm(client, settings, fake_llm):
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    fake_llm["answer"] = answer(("Maria Lopez", "person"))
    add_key(client, provider="custom", model="tiny-local", base_url=fake_llm["url"] + "/v1")
    memory = client.post("/v1/memories", {"agent_id": "a", "content": "Maria Lopez holds "
                                          "the vault key for JIRA-4812.",
                                          "visibility": "confidential",
                                          "auto_extract_entities": False},
                         format="json").json()
    queued = client.post(f"/v1/memories/{memory['id']}/extract-entities").json()
    assert queued["extraction_method"] != "llm"
    assert pipeline.extraction_run_now(memory_ids=[memory["id"]]) == 1
    run = MemoryExtraction.objects.get(memory_id=memory["id"])
    assert run.status == "done" and run.method != "llm"
    assert fake_llm["requests"] == []
    assert "Maria Lopez" in set(EntityLink.objects.filter(memory_id=memory["id"])
                                .values_list("entity__name", flat=True))


@pytest.mark.parametrize("broken", [{"encrypted_key": "gAAAAA-not-a-token"},
                                    {"base_url": "https://llm.example.com:99999/v1"}])
def test_an_unreadable_key_falls_back_to_the_server_extractor(client, settings, broken):
    """A key that cannot be read, or whose URL cannot be called (one stored before its port
    was checked), leaves extraction to the rules, with no task failing on it."""
    add_key(client)
    ExtractionKey.objects.update(**broken)
    memory = client.post("/v1/memories", {"agent_id": "a", "content": "Bob joined Globex",
                                          "auto_extract_entities": False},
                         format="json").json()
    pipeline.extraction_run_now(memory_ids=[memory["id"]])
    assert MemoryExtraction.objects.get(memory_id=memory["id"]).method == "rules"


@pytest.mark.django_db(transaction=True)
def test_concurrent_activations_leave_one_key_active(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run `make test-postgres` (DATABASE_URL pointing at "
                    "a server)")
    user = get_user_model().objects.create(username="racer")
    client = make_client(api_key_create(user=user, name="k")[1])
    keys = [add_key(client, model=f"m{n}")["id"] for n in range(6)]
    for _ in range(10):
        barrier, answers = threading.Barrier(len(keys)), []

        def activate(key_id, barrier=barrier, answers=answers):
            racer = make_client(api_key_create(user=user, name="t")[1])
            barrier.wait()
            answers.append(racer.post(f"/v1/extraction/keys/{key_id}/activate").status_code)
            connection.close()

        threads = [threading.Thread(target=activate, args=(k,)) for k in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(answers) <= {200, 409}
        assert ExtractionKey.objects.filter(account=user, is_active=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_keys_store_every_key_and_one_active(db):
    """An account with no key yet, and several keys added at once: each is stored (201),
    one is the active one, never a 500 on the one-active constraint."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run `make test-postgres` (DATABASE_URL pointing at "
                    "a server)")
    for round_ in range(5):
        user = get_user_model().objects.create(username=f"first-{round_}")
        clients = [make_client(api_key_create(user=user, name=f"t{n}")[1]) for n in range(8)]
        barrier, answers = threading.Barrier(len(clients)), []

        def add(client, n, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(client.post("/v1/extraction/keys", {
                "provider": "openai", "api_key": SECRET, "model": f"m{n}"},
                format="json").status_code)
            connection.close()

        threads = [threading.Thread(target=add, args=(c, n)) for n, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [201] * len(clients)
        assert ExtractionKey.objects.filter(account=user).count() == len(clients)
        assert ExtractionKey.objects.filter(account=user, is_active=True).count() == 1


def test_a_key_added_beside_an_active_one_is_stored_inactive(client):
    first, second = add_key(client, model="m1"), add_key(client, model="m2")
    assert (first["is_active"], second["is_active"]) == (True, False)


def extract_with_key(client, base_url: str) -> str:
    """Stores a key with ``base_url`` and extracts one memory: the method that ran."""
    add_key(client, provider="custom", model="tiny-local", base_url=base_url)
    memory = client.post("/v1/memories", {"agent_id": "a", "content": "Maria Lopez from "
                                          "Acme Corp moved JIRA-4812 to pgvector.",
                                          "auto_extract_entities": False},
                         format="json").json()
    pipeline.extraction_run_now(memory_ids=[memory["id"]])
    return MemoryExtraction.objects.get(memory_id=memory["id"]).method


def test_a_name_rebound_to_this_machine_after_its_check_is_never_called(
        client, settings, fake_llm, rebinding_dns):
    """The account's endpoint is called on the addresses checked: a name answering a
    public address first and 127.0.0.1 afterwards reaches nothing on this machine."""
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = False
    fake_llm["answer"] = answer(("Maria Lopez", "person"))
    dns = rebinding_dns("llm.example.com", int(fake_llm["url"].rsplit(":", 1)[1]))
    assert extract_with_key(client, "https://llm.example.com/v1") == "rules"
    assert fake_llm["requests"] == []
    assert [address[0] for address in dns["connects"]] == ["93.184.215.14"]


def test_a_redirect_from_the_accounts_endpoint_is_not_followed(client, settings, fake_llm):
    """Its target was never checked (a 302 would also turn the POST into a GET)."""
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    fake_llm["answer"] = answer(("Maria Lopez", "person"))
    followed = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            self.send_response(302)
            self.send_header("Location", fake_llm["url"] + "/v1/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            followed.append(self.path)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        assert extract_with_key(client, url) == "rules"
    finally:
        server.shutdown()
        server.server_close()
    assert fake_llm["requests"] == [] and followed == []


def test_an_answer_larger_than_the_limit_is_not_read_whole(client, settings, fake_llm,
                                                           monkeypatch):
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    monkeypatch.setattr(llm, "ANSWER_LIMIT", 2000, raising=False)
    fake_llm["answer"] = answer(("Maria Lopez", "person")) + " " * 4000  # valid, but long
    assert extract_with_key(client, fake_llm["url"] + "/v1") == "rules"
    assert len(fake_llm["requests"]) == 1


@pytest.mark.parametrize("answer", [
    {"raw": b"[" * 100_000 + b"]" * 100_000},
    {"answer": "[" * 100_000 + "]" * 100_000},
])
def test_an_answer_nested_past_the_stack_falls_back_to_the_rules(client, settings, fake_llm,
                                                                answer):
    """It failed the extraction (a RecursionError is no ValueError) instead of falling
    back, as every other failure does."""
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    fake_llm.update(answer)
    assert extract_with_key(client, fake_llm["url"] + "/v1") == "rules"
    assert MemoryExtraction.objects.get().status == "done"


def test_keys_encrypted_with_the_old_fixed_secret_are_encrypted_again_by_the_migration(
        client, settings):
    """Earlier releases derived the encryption key from a secret key shipped in the code
    when DJANGO_SECRET_KEY was not set; the migration moves those keys to this install's."""
    import importlib

    from django.apps import apps

    from memoryrelay_site.secrets import _derived

    add_key(client, api_key="sk-old-release-0001")
    add_key(client, provider="anthropic", api_key="sk-new-release-0002",
            model="claude-3-5-haiku-latest")
    old = ExtractionKey.objects.get(provider="openai")
    legacy = _derived(settings.LEGACY_SECRET_KEY).encrypt(b"sk-old-release-0001").decode()
    ExtractionKey.objects.filter(pk=old.pk).update(encrypted_key=legacy)
    kept = ExtractionKey.objects.get(provider="anthropic").encrypted_key
    ExtractionKey.objects.create(account=old.account, provider="openai", model="m",
                                 encrypted_key="not a token", masked_key="…", is_active=False)
    migration = importlib.import_module(
        "entities_app.migrations.0008_provider_keys_reencrypted")
    migration.reencrypt(apps, None)
    again = ExtractionKey.objects.get(pk=old.pk).encrypted_key
    assert again != legacy and secret_decrypt(again) == "sk-old-release-0001"
    assert ExtractionKey.objects.get(provider="anthropic").encrypted_key == kept  # untouched
    assert ExtractionKey.objects.get(model="m").encrypted_key == "not a token"


def test_a_key_stored_under_the_old_fixed_secret_after_the_migration_is_moved_when_used(
        client, settings):
    """A process of an earlier release still serving during an upgrade (or a machine not
    yet upgraded) stored a key under the old fixed secret after the migration had run: it
    stayed unreadable for good, and the account's extraction fell back to the rules."""
    from entities_app.byok import account_extractor
    from memoryrelay_site.secrets import _derived

    add_key(client, api_key="sk-rolling-upgrade-1234")
    key = ExtractionKey.objects.get()
    legacy = _derived(settings.LEGACY_SECRET_KEY).encrypt(b"sk-rolling-upgrade-1234").decode()
    ExtractionKey.objects.filter(pk=key.pk).update(encrypted_key=legacy)
    settings.MEMORYRELAY_BYOK_ALLOW_LOCAL = True
    extractor = account_extractor(account_id=key.account_id, fallback=None)
    assert extractor is not None and extractor.endpoint.api_key == "sk-rolling-upgrade-1234"
    again = ExtractionKey.objects.get(pk=key.pk).encrypted_key
    assert again != legacy and secret_decrypt(again) == "sk-rolling-upgrade-1234"
