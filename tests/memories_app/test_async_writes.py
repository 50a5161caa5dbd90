"""POST /v2/memories and GET /v2/memories/{id}/status (API.md §10): one insert and a 202,
the embedding (and dedup) done by a task, on both queue backends."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from memories_app import embeddings
from memories_app.models import Memory
from memories_app.tasks import memory_embed
from memoryrelay_site import tasks as site_tasks
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


def post(client, **body):
    return client.post("/v2/memories", {"agent_id": "writer", **body}, format="json")


def status_of(client, memory_id) -> dict:
    response = client.get(f"/v2/memories/{memory_id}/status")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def flaky_provider(monkeypatch):
    """The configured provider, made to fail its first ``failures`` calls."""
    provider = embeddings.get_provider()
    state = {"failures": 0, "calls": 0, "seen_status": []}
    real = type(provider).embed

    def embed(self, texts):
        state["calls"] += 1
        state["seen_status"].extend(
            Memory.objects.filter(content__in=list(texts)).values_list("status", flat=True))
        if state["calls"] <= state["failures"]:
            raise embeddings.EmbeddingError("provider down (test)")
        return real(self, texts)

    monkeypatch.setattr(type(provider), "embed", embed)
    monkeypatch.setattr(type(provider), "available", True, raising=False)
    return state


def test_a_post_answers_202_pending_and_the_memory_reads_at_once_unembedded(client, task_queue):
    response = post(client, content="The deploy key rotates every Monday", importance=0.9)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["job_id"]
    assert isinstance(body["estimated_completion_seconds"], int)
    read = client.get(f"/v1/memories/{body['id']}")
    assert read.status_code == 200
    assert read.json()["content"] == "The deploy key rotates every Monday"
    assert read.json()["tier"] == "hot"
    stored = Memory.objects.get(pk=body["id"])
    assert stored.embedding is None and stored.status == "pending"
    assert task_queue.pending() == 1
    assert status_of(client, body["id"])["status"] == "pending"


def test_a_worker_makes_it_ready_and_searchable_by_meaning(client, task_queue, flaky_provider):
    memory_id = post(client, content="Our staging database runs PostgreSQL 16").json()["id"]
    assert task_queue.run() == 1
    status = status_of(client, memory_id)
    assert status["status"] == "ready" and "error" not in status
    assert isinstance(status["created_at"], int) and isinstance(status["updated_at"], int)
    assert flaky_provider["seen_status"] == ["processing"]  # claimed while it embeds
    assert Memory.objects.get(pk=memory_id).embedding is not None
    found = client.post("/v1/memories/search", {"query": "which postgres version on staging",
                                                "agent_id": "writer"}, format="json").json()
    assert [hit["memory"]["id"] for hit in found["data"]][:1] == [memory_id]
    assert task_queue.pending() == 0


def test_a_failing_embedding_is_retried_until_it_succeeds(client, task_queue, flaky_provider,
                                                          settings):
    settings.MEMORYRELAY_TASK_BACKOFF = 0
    flaky_provider["failures"] = 2
    memory_id = post(client, content="Retries: the third attempt works").json()["id"]
    assert task_queue.run() == 3
    memory = Memory.objects.get(pk=memory_id)
    assert (memory.status, memory.status_attempts, memory.status_error) == ("ready", 3, "")
    assert memory.embedding is not None


def test_a_task_that_keeps_failing_ends_failed_with_its_error(client, task_queue,
                                                              flaky_provider, settings):
    settings.MEMORYRELAY_TASK_BACKOFF, settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 0, 3
    flaky_provider["failures"] = 99
    memory_id = post(client, content="This one never embeds").json()["id"]
    task_queue.run()
    assert flaky_provider["calls"] == 3
    status = status_of(client, memory_id)
    assert status["status"] == "failed"
    assert status["error"] == "provider down (test)"
    assert client.get(f"/v1/memories/{memory_id}").status_code == 200  # kept, readable


def test_retries_back_off_exponentially_up_to_a_cap(settings):
    settings.MEMORYRELAY_TASK_BACKOFF = 2
    assert [site_tasks.retry_delay(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert site_tasks.retry_delay(30) == 300


def test_a_failed_attempt_is_enqueued_again_after_its_backoff(client, settings, flaky_provider):
    from django_tasks_db.models import DBTaskResult

    settings.MEMORYRELAY_TASK_BACKOFF = 30
    flaky_provider["failures"] = 1
    memory_id = post(client, content="Waits before its second attempt").json()["id"]
    assert memory_embed.call(memory_id) == "retrying"
    retry = DBTaskResult.objects.filter(status="READY").order_by("-enqueued_at").first()
    assert (retry.run_after - retry.enqueued_at).total_seconds() >= 29
    assert Memory.objects.get(pk=memory_id).status == "pending"


def test_a_task_run_twice_does_the_work_once(client, task_queue, flaky_provider):
    memory_id = post(client, content="Delivered twice, embedded once").json()["id"]
    assert memory_embed.call(memory_id) == "ready"
    assert memory_embed.call(memory_id) == "skipped"
    assert flaky_provider["calls"] == 1


def test_a_memory_deleted_before_its_task_runs_is_left_alone(client, task_queue,
                                                             flaky_provider):
    memory_id = post(client, content="Deleted before the worker came").json()["id"]
    assert client.delete(f"/v1/memories/{memory_id}").status_code == 200
    task_queue.run()
    assert flaky_provider["calls"] == 0
    assert client.get(f"/v2/memories/{memory_id}/status").status_code == 404


def test_dedup_when_asked_keeps_the_first_and_reports_the_duplicate(client, task_queue):
    first = post(client, content="Lunch is at noon on Fridays").json()["id"]
    task_queue.run()
    second = post(client, content="Lunch is at noon on Fridays", deduplicate=True).json()["id"]
    task_queue.run()
    status = status_of(client, second)
    assert status["status"] == "ready" and status["duplicate_of"] == first
    assert client.get(f"/v1/memories/{second}").status_code == 404
    assert client.get(f"/v1/memories/{first}").status_code == 200


def test_a_write_still_pending_is_no_original_for_a_duplicate(client, task_queue):
    """A pending write patched to a text gets its vector at once, but may still be judged a
    duplicate itself and deleted: a write deduplicated against it named a memory that was
    gone by the time it was read."""
    pending = post(client, content="Something else entirely", deduplicate=True).json()["id"]
    assert client.patch(f"/v1/memories/{pending}", {"content": "Backups run at 02:00 UTC"},
                        format="json").status_code == 200
    assert Memory.objects.get(pk=pending).status == "pending"
    assert Memory.objects.get(pk=pending).embedding is not None
    direct = client.post("/v1/memories", {"content": "Backups run at 02:00 UTC",
                                          "agent_id": "writer", "deduplicate": True},
                         format="json")
    assert direct.status_code == 201 and direct.json()["id"] != pending


def test_without_dedup_a_same_text_memory_is_kept(client, task_queue):
    post(client, content="Same words twice")
    post(client, content="Same words twice")
    task_queue.run()
    assert Memory.objects.live().filter(content="Same words twice", status="ready").count() == 2


def test_validation_is_that_of_v1(client, other_client):
    assert_error(post(client, content="   "), 422, "validation_error", "content")
    assert_error(client.post("/v2/memories", {"content": "x"}, format="json"), 422,
                 "validation_error", "agent_id")
    assert_error(post(client, content="x", importance=2), 422, "validation_error", "importance")
    foreign = other_client.post("/v1/sessions", {"title": "theirs"}, format="json").json()["id"]
    assert_error(post(client, content="x", session_id=foreign), 422, "validation_error",
                 "session_id")
    assert Memory.objects.count() == 0


def test_status_is_private_to_the_account_and_needs_a_key(client, other_client, anon):
    memory_id = post(client, content="Mine alone").json()["id"]
    assert_error(other_client.get(f"/v2/memories/{memory_id}/status"), 404, "not_found")
    assert_error(anon.get(f"/v2/memories/{memory_id}/status"), 401, "unauthorized")
    assert_error(anon.post("/v2/memories", {"agent_id": "a", "content": "x"}, format="json"),
                 401, "unauthorized")
    assert_error(client.get("/v2/memories/not-a-uuid/status"), 404, "not_found")
    assert_error(client.get(f"/v2/memories/{uuid.uuid4()}/status"), 404, "not_found")


def test_a_session_and_metadata_are_kept_as_v1_keeps_them(client, task_queue):
    session = client.post("/v1/sessions", {"title": "s"}, format="json").json()["id"]
    body = post(client, content="In a session", session_id=session, metadata={"k": "v"},
                memory_type="event").json()
    read = client.get(f"/v1/memories/{body['id']}").json()
    assert (read["session_id"], read["metadata"], read["memory_type"]) == (
        session, {"k": "v"}, "event")


def test_every_answer_matches_the_documented_schema(client, anon, task_queue):
    from tests.memoryrelay_site.test_openapi import Conformance

    check = Conformance(anon.get("/v1/openapi.json").json())
    accepted = check(post(client, content="documented"), "/v2/memories", "post")
    path = "/v2/memories/{memory_id}/status"
    check(client.get(f"/v2/memories/{accepted['id']}/status"), path, "get")
    task_queue.run()
    check(client.get(f"/v2/memories/{accepted['id']}/status"), path, "get")
    check(post(client, content=""), "/v2/memories", "post")
    check(client.get(f"/v2/memories/{uuid.uuid4()}/status"), path, "get")
    check(anon.get(f"/v2/memories/{uuid.uuid4()}/status"), path, "get")


def test_on_the_database_queue_a_write_is_one_insert_and_a_dispatcher_queues_it(
        client, settings):
    """The pending memory is its own queue entry: no task row in the request; the worker's
    dispatcher hands it to exactly one task, however many dispatchers run."""
    from django_tasks_db.models import DBTaskResult

    from memories_app.tasks import memory_embeds_dispatch
    from memoryrelay_site.tasks import task_queue_state
    from tests.taskqueue import use_backend

    use_backend(settings, "database")
    body = post(client, content="one insert").json()
    assert body["job_id"] == body["id"]
    assert not DBTaskResult.objects.exists()
    stored = Memory.objects.get(pk=body["id"])
    assert (stored.status, stored.status_changed_at) == ("pending", None)
    state = task_queue_state()
    assert state["pending"] == 1 and state["oldest_pending_age_seconds"] is not None
    assert memory_embeds_dispatch() == 1
    assert memory_embeds_dispatch() == 0  # taken once
    assert DBTaskResult.objects.count() == 1
    assert Memory.objects.get(pk=body["id"]).status_changed_at is not None
    assert task_queue_state()["pending"] == 1  # now as its task row


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_queue_each_write_once(client, settings):
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from memories_app.tasks import memory_embeds_dispatch
    from tests.taskqueue import use_backend

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run `make test-postgres` (DATABASE_URL pointing at "
                    "a server)")
    import threading

    use_backend(settings, "database")
    for n in range(40):
        post(client, content=f"raced write {n}")
    barrier, handed = threading.Barrier(4), []

    def dispatch():
        barrier.wait()
        handed.append(memory_embeds_dispatch())
        connection.close()

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(handed) == 40 and DBTaskResult.objects.count() == 40


def test_with_redis_down_the_write_is_kept_and_the_sweep_queues_it_later(client, settings,
                                                                          caplog):
    from tests.taskqueue import use_backend

    use_backend(settings, "rq", url="redis://127.0.0.1:1/0")
    with caplog.at_level("WARNING"):
        response = post(client, content="stored while Redis is down")
    assert response.status_code == 202 and response.json()["job_id"] is None
    assert Memory.objects.get(pk=response.json()["id"]).status == "pending"
    # An outage, not a bug: one line per write, no traceback (it was about 40 lines each).
    lines = [r for r in caplog.records if "not queued" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "the sweep queues it later" in lines[0].getMessage()


def test_a_patch_while_the_task_embeds_is_embedded_and_judged_as_patched(client, task_queue,
                                                                         monkeypatch):
    """The content changes while the task embeds the old one: the task's result (the old
    text's vector, and a duplicate verdict on the old text) must not land on the new text,
    which is embedded and judged again."""
    first = post(client, content="Lunch is at noon on Fridays").json()["id"]
    task_queue.run()
    second = post(client, content="Lunch is at noon on Fridays", deduplicate=True).json()["id"]
    provider = embeddings.get_provider()
    real = type(provider).embed
    patched = []

    def embed(self, texts):
        if not patched and list(texts) == ["Lunch is at noon on Fridays"]:
            patched.append(client.patch(f"/v1/memories/{second}", {
                "content": "Bananas are rich in potassium"}, format="json").status_code)
        return real(self, texts)

    monkeypatch.setattr(type(provider), "embed", embed)
    task_queue.run()
    assert patched == [200]
    row = Memory.objects.get(pk=second)
    assert (row.content, row.status, row.deleted_at, row.duplicate_of) == (
        "Bananas are rich in potassium", "ready", None, None)
    expected = real(provider, ["Bananas are rich in potassium"])[0]
    assert float(np.dot(np.asarray(row.embedding), expected)) > 0.999
    assert client.get(f"/v1/memories/{second}").status_code == 200
    assert client.get(f"/v1/memories/{first}").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_finishing_the_same_text_at_once_keep_one(client, task_queue,
                                                              monkeypatch):
    """Each worker judged its memory against the others before either had written its
    vector, so both were kept; the verdicts are now taken one after the other."""
    import threading

    from django.db import connection

    first = post(client, content="Standup moved to 9:30", deduplicate=True).json()["id"]
    second = post(client, content="Standup moved to 9:30", deduplicate=True).json()["id"]
    provider = embeddings.get_provider()
    real = type(provider).embed
    both_embedding = threading.Barrier(2)

    def embed_together(self, texts):
        vectors = real(self, texts)
        both_embedding.wait(10)  # both vectors ready before either verdict
        return vectors

    monkeypatch.setattr(type(provider), "embed", embed_together)
    errors = []

    def finish(memory_id):
        try:
            memory_embed.call(memory_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(pk,)) for pk in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    statuses = [status_of(client, pk) for pk in (first, second)]
    assert [s["status"] for s in statuses] == ["ready", "ready"]
    assert sum(s.get("duplicate_of") is not None for s in statuses) == 1
    assert Memory.objects.filter(content="Standup moved to 9:30",
                                 deleted_at__isnull=True).count() == 1
