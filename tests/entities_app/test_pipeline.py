"""Entity extraction of memories end to end: writes queue it (auto_extract_entities and the
server default), a task runs it on both queue backends, entities are matched by key, links
replaced on re-extraction (manual ones kept), and the three endpoints."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection

from entities_app import pipeline
from entities_app.models import Entity, EntityLink, MemoryExtraction
from entities_app.tasks import extractions_sweep, memory_extract_entities
from memories_app.models import Memory
from tests.conftest import assert_error
from tests.taskqueue import task_queue  # noqa: F401 - the fixture, on both queue backends

# Writes announce themselves and queue tasks on commit: real commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Maria Lopez from Acme Corp moved JIRA-4812 to pgvector on PostgreSQL."


def write(client, content=TEXT, **body):
    response = client.post("/v1/memories", {"agent_id": "writer", "content": content, **body},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def linked(memory_id) -> dict[str, tuple[str, str, float]]:
    return {link.entity.name: (link.entity.entity_type, link.source, link.relevance_score)
            for link in EntityLink.objects.filter(memory_id=memory_id).select_related("entity")}


def status(client, memory_id) -> dict:
    response = client.get(f"/v1/memories/{memory_id}/extraction-status")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_write_is_extracted_by_a_task_after_the_response(client, task_queue):  # noqa: F811
    memory_id = write(client)
    assert status(client, memory_id)["status"] == "pending"
    assert linked(memory_id) == {}
    task_queue.run()
    links = linked(memory_id)
    assert links["Maria Lopez"][:2] == ("person", "extracted")
    assert links["Acme Corp"][:2] == ("organization", "extracted")
    assert {"JIRA-4812", "pgvector", "PostgreSQL"} <= set(links)
    assert all(0 < score <= 1 for _, _, score in links.values())
    body = status(client, memory_id)
    assert body["status"] == "done" and body["extraction_method"] == "rules"
    assert body["entity_count"] == len(links) and body["updated_at"].endswith("Z")
    memory = client.get(f"/v1/memories/{memory_id}").json()
    assert {"type": "person", "value": "Maria Lopez"}.items() <= next(
        e for e in memory["entities"] if e["value"] == "Maria Lopez").items()


def test_spellings_of_one_name_are_one_entity_of_the_account(client, task_queue):  # noqa: F811
    first = write(client, "Contract signed with Acme Corp today.")
    second = write(client, "The ACME team wants a call; acme-corp is their GitHub org.")
    task_queue.run()
    assert Entity.objects.filter(key="acme", entity_type="organization").count() == 1
    entity = Entity.objects.get(key="acme", entity_type="organization")
    assert entity.name == "Acme Corp"
    assert EntityLink.objects.filter(entity=entity, memory_id=first).exists()
    assert pipeline.auto_extract(None) is True and second


def test_auto_extract_false_skips_and_true_overrides_the_server_default(client, settings,
                                                                     task_queue):  # noqa: F811
    off = write(client, auto_extract_entities=False)
    settings.MEMORYRELAY_AUTO_EXTRACT_ENTITIES = False
    default = write(client)
    forced = write(client, auto_extract_entities=True)
    task_queue.run()
    assert status(client, off)["status"] == "not_started" and linked(off) == {}
    assert status(client, default)["status"] == "not_started"
    assert status(client, forced)["status"] == "done" and linked(forced)


def test_batch_items_and_async_writes_carry_auto_extract(client, task_queue):  # noqa: F811
    response = client.post("/v1/memories/batch", {"memories": [
        {"agent_id": "writer", "content": TEXT, "auto_extract_entities": True},
        {"agent_id": "writer", "content": "Tom Becker joined Brightline Logistics.",
         "auto_extract_entities": False},
    ]}, format="json")
    assert response.status_code in (200, 201, 207), response.content
    on, off = (r["id"] for r in response.json()["results"])
    v2 = client.post("/v2/memories", {"agent_id": "writer", "content": TEXT,
                                      "auto_extract_entities": True}, format="json")
    assert v2.status_code == 202, v2.content
    v2_id = v2.json()["id"]
    assert status(client, v2_id)["status"] == "not_started"  # extracted once ready
    task_queue.run()
    assert linked(on) and linked(off) == {}
    assert Memory.objects.get(pk=v2_id).status == "ready"
    assert status(client, v2_id)["status"] == "done" and linked(v2_id)


def test_an_update_re_extracts_and_replaces_only_extracted_links(client, task_queue):  # noqa: F811
    memory_id = write(client)
    task_queue.run()
    manual = client.post("/v1/entities", {"name": "Billing", "entity_type": "project"},
                         format="json").json()
    client.post("/v1/entities/links", {"entity_id": manual["id"], "memory_id": memory_id},
                format="json")
    response = client.patch(f"/v1/memories/{memory_id}",
                            {"content": "Tom Becker now owns the Kafka migration."},
                            format="json")
    assert response.status_code == 200, response.content
    task_queue.run()
    links = linked(memory_id)
    assert set(links) == {"Tom Becker", "Kafka", "Billing"}
    assert links["Billing"][1] == "manual"
    assert status(client, memory_id)["entity_count"] == 3


def test_a_manual_link_to_an_extracted_entity_stays_manual(client, task_queue):  # noqa: F811
    entity = client.post("/v1/entities", {"name": "PostgreSQL", "entity_type": "technology"},
                         format="json").json()
    memory_id = write(client, auto_extract_entities=False)
    client.post("/v1/entities/links", {"entity_id": entity["id"], "memory_id": memory_id},
                format="json")
    client.post(f"/v1/memories/{memory_id}/extract-entities")
    task_queue.run()
    assert linked(memory_id)["PostgreSQL"] == ("technology", "manual", 1.0)
    assert Entity.objects.filter(key="postgresql").count() == 1


def test_the_task_is_idempotent(client, task_queue):  # noqa: F811
    memory_id = write(client)
    task_queue.run()
    before = linked(memory_id)
    assert memory_extract_entities.call(memory_id) == "skipped"
    client.post(f"/v1/memories/{memory_id}/extract-entities")
    client.post(f"/v1/memories/{memory_id}/extract-entities")
    task_queue.run()
    assert linked(memory_id) == before
    assert Entity.objects.count() == len(before)


def test_extract_entities_endpoint_answers_queued(client, task_queue):  # noqa: F811
    memory_id = write(client, auto_extract_entities=False)
    response = client.post(f"/v1/memories/{memory_id}/extract-entities")
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "memory_id": memory_id,
                               "extraction_method": "rules", "extraction_model": "rules"}
    task_queue.run()
    assert status(client, memory_id)["status"] == "done"


def test_another_accounts_or_a_missing_memory_is_404(client, other_client):
    memory_id = write(client, auto_extract_entities=False)
    for path in (f"/v1/memories/{memory_id}/extract-entities",):
        assert_error(other_client.post(path), 404, "not_found")
    assert_error(other_client.get(f"/v1/memories/{memory_id}/extraction-status"), 404,
                 "not_found")
    assert_error(client.post(f"/v1/memories/{uuid.uuid4()}/extract-entities"), 404, "not_found")
    assert_error(client.get("/v1/memories/not-a-uuid/extraction-status"), 404, "not_found")
    client.delete(f"/v1/memories/{memory_id}")
    assert_error(client.post(f"/v1/memories/{memory_id}/extract-entities"), 404, "not_found")


def test_backfill_queues_memories_never_processed(client, other_client, task_queue):  # noqa: F811
    never = [write(client, f"Priya moved service {i} to Redis.", auto_extract_entities=False)
             for i in range(3)]
    other_agent = client.post("/v1/memories", {"agent_id": "other-agent", "content": TEXT,
                                               "auto_extract_entities": False},
                              format="json").json()["id"]
    done = write(client)
    task_queue.run()
    write_other = other_client.post("/v1/memories", {"agent_id": "x", "content": TEXT,
                                                     "auto_extract_entities": False},
                                    format="json").json()["id"]
    response = client.post("/v1/memories/backfill-entities?limit=2&agent_id=writer")
    assert response.status_code == 202 and response.json() == {"status": "queued", "queued": 2}
    again = client.post("/v1/memories/backfill-entities?agent_id=writer").json()
    assert again["queued"] == 1
    assert client.post("/v1/memories/backfill-entities").json()["queued"] == 1  # other-agent
    task_queue.run()
    for memory_id in [*never, other_agent, done]:
        assert status(client, memory_id)["status"] == "done"
    assert status(other_client, write_other)["status"] == "not_started"
    assert_error(client.post("/v1/memories/backfill-entities?limit=0"), 422,
                 "validation_error", "limit")


def test_a_failing_extractor_is_retried_then_ends_failed(client, settings, monkeypatch):
    settings.MEMORYRELAY_TASK_MAX_ATTEMPTS = 2
    memory_id = write(client, auto_extract_entities=False)

    class Broken:
        method, model = "rules", ""

        def extract(self, text):
            raise RuntimeError("extractor down (test)")

    monkeypatch.setattr(pipeline, "extractor", lambda: Broken())
    enqueued = []
    monkeypatch.setattr("entities_app.tasks.task_enqueue",
                        lambda task, *args, **kw: enqueued.append((args, kw)))
    pipeline.extraction_request(memory_ids=[memory_id])
    assert memory_extract_entities.call(memory_id) == "retrying"
    assert enqueued and enqueued[0][1]["delay"] > 0
    assert status(client, memory_id)["status"] == "pending"
    assert memory_extract_entities.call(memory_id) == "failed"
    body = status(client, memory_id)
    assert body["status"] == "failed" and "extractor down" in body["error"]


def test_a_lost_task_is_handed_out_again_by_the_sweep(client, monkeypatch):
    memory_id = write(client, auto_extract_entities=False)
    pipeline.extraction_request(memory_ids=[memory_id])
    enqueued = []
    monkeypatch.setattr("entities_app.tasks.task_enqueue",
                        lambda task, *args, **kw: enqueued.append(args))
    from django.utils import timezone

    assert extractions_sweep(timezone.now()) == 1
    assert enqueued == [(memory_id,)]
    assert memory_extract_entities.call(memory_id) == "done"


def test_a_request_lost_after_the_write_is_made_again_by_the_sweep(client, task_queue,  # noqa: F811
                                                                    monkeypatch):
    """The write committed and was answered; asking for its extraction then failed (the
    database went away). Nothing recorded it, so nothing retried it."""
    from datetime import timedelta

    from django.utils import timezone

    from memoryrelay_site.tasks import tasks_sweep

    real = pipeline._request
    monkeypatch.setattr(pipeline, "_request", lambda ids: (_ for _ in ()).throw(
        RuntimeError("the database went away (test)")))
    lost = write(client, TEXT)
    kept_out = write(client, "Nobody wants this one extracted.", auto_extract_entities=False)
    assert not MemoryExtraction.objects.exists()
    monkeypatch.setattr(pipeline, "_request", real)
    Memory.objects.filter(pk__in=[lost, kept_out]).update(
        created_at=timezone.now() - timedelta(minutes=10))
    tasks_sweep(lease_seconds=60)
    task_queue.run()
    assert status(client, lost)["status"] == "done" and "Maria Lopez" in linked(lost)
    assert not MemoryExtraction.objects.filter(memory_id=kept_out).exists()
    old = write(client, "Written long ago, before a restore.", auto_extract_entities=True)
    MemoryExtraction.objects.filter(memory_id=old).delete()
    Memory.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=3))
    tasks_sweep(lease_seconds=60)
    assert not MemoryExtraction.objects.filter(memory_id=old).exists()  # backfill's to ask


def test_a_re_extraction_lost_after_a_content_update_is_made_again_by_the_sweep(
        client, task_queue, monkeypatch):  # noqa: F811
    """The update committed and was answered; asking for the re-extraction then failed (the
    database went away). The extraction still said done, with the old content's links, and
    nothing asked again: the memory kept naming who it no longer mentions."""
    from datetime import timedelta

    from django.db import OperationalError
    from django.utils import timezone

    from memoryrelay_site.tasks import tasks_sweep

    memory_id = write(client, TEXT)
    task_queue.run()
    assert "Maria Lopez" in linked(memory_id)
    real = pipeline._request
    monkeypatch.setattr(pipeline, "_request", lambda ids, **kw: (_ for _ in ()).throw(
        OperationalError("the database went away (test)")))
    response = client.patch(f"/v1/memories/{memory_id}",
                            {"content": "Jonas Berg from Initech Corp moved JIRA-9 to Redis."},
                            format="json")
    assert response.status_code == 200, response.content
    monkeypatch.setattr(pipeline, "_request", real)
    assert status(client, memory_id)["status"] == "pending"
    MemoryExtraction.objects.filter(memory_id=memory_id).update(
        updated_at=timezone.now() - timedelta(minutes=10))
    tasks_sweep(lease_seconds=60)
    task_queue.run()
    links = linked(memory_id)
    assert "Jonas Berg" in links and "Maria Lopez" not in links
    assert status(client, memory_id)["status"] == "done"


def test_a_request_during_a_run_is_not_overwritten(client):
    memory_id = write(client, auto_extract_entities=False)
    pipeline.extraction_request(memory_ids=[memory_id])
    claim = pipeline.extraction_claim(memory_id=memory_id)
    pipeline.extraction_request(memory_ids=[memory_id])  # the content changed meanwhile
    assert pipeline.extraction_apply(claim=claim) is None
    assert MemoryExtraction.objects.get(memory_id=memory_id).status == "pending"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_extractions_of_one_name_make_one_entity(client):
    ids = [write(client, f"Call with Initech's team, note {i}.", auto_extract_entities=False)
           for i in range(6)]
    pipeline.extraction_request(memory_ids=ids)
    barrier = threading.Barrier(len(ids))
    errors = []

    def run(memory_id):
        try:
            barrier.wait()
            memory_extract_entities.call(memory_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(pk,)) for pk in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Entity.objects.filter(key="initech").count() == 1
    assert EntityLink.objects.filter(entity__key="initech").count() == len(ids)


def test_the_status_read_costs_few_queries(client, django_assert_max_num_queries):
    memory_id = write(client, auto_extract_entities=False)
    with django_assert_max_num_queries(6):
        client.get(f"/v1/memories/{memory_id}/extraction-status")


def test_the_backfill_command_queues_or_extracts_with_progress(client, account, task_queue):  # noqa: F811
    from io import StringIO

    from django.core.management import call_command

    ids = [write(client, f"Priya moved service {i} to Redis.", auto_extract_entities=False)
           for i in range(3)]
    out, err = StringIO(), StringIO()
    call_command("backfill_entities", "--dry-run", stdout=out, stderr=err)
    assert "Would extract the entities of 3 memories" in out.getvalue()
    assert status(client, ids[0])["status"] == "not_started"
    call_command("backfill_entities", "--limit", "2", stdout=out, stderr=err)
    assert "Queued the entity extraction of 2 memories" in out.getvalue()
    assert "queueing entities of memories: 2/2" in err.getvalue()
    task_queue.run()
    assert [status(client, pk)["status"] for pk in ids] == ["done", "done", "not_started"]
    out = StringIO()
    call_command("backfill_entities", "--in-process", "--account", account.username,
                 "--agent", "writer", stdout=out, stderr=err)
    assert "Extracted the entities of 1 memories" in out.getvalue()
    assert status(client, ids[2])["status"] == "done" and linked(ids[2])
    out = StringIO()
    call_command("backfill_entities", "--redo", "--in-process", stdout=out, stderr=err)
    assert "Extracted the entities of 3 memories" in out.getvalue()


def test_the_backfill_command_refuses_an_unknown_account(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no account named"):
        call_command("backfill_entities", "--account", "nobody")


def test_an_update_leaves_a_memory_written_without_extraction_alone(client, task_queue):  # noqa: F811
    memory_id = write(client, auto_extract_entities=False)
    client.patch(f"/v1/memories/{memory_id}", {"content": "Tom Becker owns Kafka now."},
                 format="json")
    task_queue.run()
    assert status(client, memory_id)["status"] == "not_started" and linked(memory_id) == {}


def test_a_memory_deleted_before_its_task_runs_is_left_alone(client, task_queue):  # noqa: F811
    memory_id = write(client)
    client.delete(f"/v1/memories/{memory_id}")
    task_queue.run()
    assert MemoryExtraction.objects.get(memory_id=memory_id).status == "pending"
    assert linked(memory_id) == {} and Entity.objects.count() == 0


def test_extracted_entities_join_the_graph(client, task_queue):  # noqa: F811
    write(client, "Maria Lopez from Acme Corp moved the ledger to pgvector.")
    write(client, "Acme Corp renewed; Maria Lopez signed.")
    task_queue.run()
    acme = Entity.objects.get(key="acme")
    response = client.get(f"/v1/entities/{acme.pk}/relationships")
    assert response.status_code == 200, response.content
    shared = {row["entity"]["name"]: row["shared_memory_count"]
              for row in response.json()["data"]}
    assert shared["Maria Lopez"] == 2 and shared["pgvector"] == 1


def test_a_batch_write_queues_one_task_for_its_memories(client, task_queue):  # noqa: F811
    response = client.post("/v1/memories/batch", {"memories": [
        {"agent_id": "writer", "content": f"Priya moved service {i} to Redis."}
        for i in range(3)]}, format="json")
    assert response.status_code in (200, 201, 207), response.content
    assert task_queue.run() == 1
    for row in response.json()["results"]:
        assert status(client, row["id"])["status"] == "done" and linked(row["id"])


def test_inside_a_request_extraction_is_asked_for_once_the_response_is_sent(client):
    from django.core.signals import request_finished, request_started

    memory_id = write(client, auto_extract_entities=False)
    request_started.send(sender=None)
    pipeline.on_memories_written(memory_ids=[memory_id], extract=True, reason="create")
    assert not MemoryExtraction.objects.filter(memory_id=memory_id).exists()
    request_finished.send(sender=None)
    assert MemoryExtraction.objects.get(memory_id=memory_id).status == "pending"
    # Outside a request (a task, a command) it is asked for at once.
    other = write(client, auto_extract_entities=False)
    pipeline.on_memories_written(memory_ids=[other], extract=True, reason="create")
    assert MemoryExtraction.objects.filter(memory_id=other).exists()


def test_backfill_takes_its_parameters_from_a_json_body_too(client, task_queue):  # noqa: F811
    for n in range(3):
        client.post("/v1/memories", {"agent_id": "writer", "content": f"Alice met Bob {n}",
                                     "auto_extract_entities": False}, format="json")
    response = client.post("/v1/memories/backfill-entities",
                           {"limit": 2, "agent_id": "writer"}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["queued"] == 2
    assert_error(client.post("/v1/memories/backfill-entities", {"limit": "two"},
                             format="json"), 422, "validation_error", "limit")
    assert_error(client.post("/v1/memories/backfill-entities", [1, 2], format="json"),
                 422, "validation_error", "body")


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
def test_the_connection_used_after_the_response_is_given_back(client, settings):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    memory_id = write(client, auto_extract_entities=False)
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    # In a server Django's own receiver runs first and closes the request's connection (the
    # test client moves it last): run without it, closing by hand where it would.
    request_finished.disconnect(close_old_connections)
    try:
        request_started.send(sender=None)
        pipeline.on_memories_written(memory_ids=[memory_id], extract=True, reason="create")
        connection.close()
        request_finished.send(sender=None)
        assert connection.connection is None  # not left open (a server's pool would run dry)
    finally:
        request_finished.connect(close_old_connections)
    assert MemoryExtraction.objects.filter(memory_id=memory_id).exists()


@pytest.mark.postgres
def test_a_link_written_while_re_extraction_drops_it_waits_instead_of_deadlocking(
        client, account, monkeypatch):
    """The link holds the memory and then writes its row; re-extraction deleted its old
    extracted link and then (the co-occurrence trigger) waited for the memory: each held
    what the other waited for. It takes the memory first now, so one waits for the other.
    The link asked for by hand stays (it becomes manual)."""
    from entities_app import services as entity_services

    memory_id = write(client, "Maria Lopez joined the billing team.")
    pipeline.extraction_run_now(memory_ids=[memory_id])
    maria = Entity.objects.get(name="Maria Lopez")
    assert linked(memory_id)["Maria Lopez"][1] == "extracted"
    Memory.objects.filter(pk=memory_id).update(content="Nobody is named here any more.")
    holds_memory, extracting = threading.Event(), threading.Event()
    real = entity_services._memory_for_link

    def held_a_while(**kwargs):
        memory = real(**kwargs)
        holds_memory.set()
        extracting.wait(10)
        time.sleep(0.5)  # re-extraction is now inside its transaction, waiting or deleting
        return memory

    monkeypatch.setattr(entity_services, "_memory_for_link", held_a_while)
    errors = []

    def link():
        try:
            entity_services.entity_link(account=account, entity=maria, memory_id=memory_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def extract():
        holds_memory.wait(10)
        extracting.set()
        try:
            pipeline.extraction_run_now(memory_ids=[memory_id])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=link), threading.Thread(target=extract)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert {name: source for name, (_, source, _) in linked(memory_id).items()} == {
        "Maria Lopez": "manual"}
    assert MemoryExtraction.objects.get(memory_id=memory_id).status == "done"


def merge_racing_extraction(entities, memory, *, generation: int, after: float) -> list:
    """Merges ``entities`` in one thread while, ``after`` seconds later, another applies the
    extraction claim ``generation`` of ``memory``; the exceptions either raised."""
    from entities_app import services as entity_services

    errors = []

    def run(call, delay):
        time.sleep(delay)
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(
            lambda: entity_services.entities_merge(entities=entities), 0)),
        threading.Thread(target=run, args=(
            lambda: pipeline.extraction_apply(
                claim=pipeline.Claim(str(memory.pk), generation, 1)), after)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


@pytest.mark.postgres
def test_a_merge_and_a_re_extraction_of_one_memory_wait_instead_of_deadlocking(account,
                                                                                monkeypatch):
    """The merge held its entities and links and then (moving a link: the co-occurrence
    trigger) waited for the memory, which the extraction held while waiting for the links."""
    from entities_app import services as entity_services
    from entities_app.models import LinkSource
    from memories_app.services import memory_create

    memory = memory_create(account=account, agent_ref="bot", content="Nothing to find here.")
    other = memory_create(account=account, agent_ref="bot", content="other")
    acme = Entity.objects.create(account=account, name="Acme", entity_type="organization")
    globex = Entity.objects.create(account=account, name="Globex", entity_type="organization")
    for entity, target in ((acme, memory), (globex, memory), (acme, other)):
        EntityLink.objects.create(account=account, entity=entity, memory=target,
                                  source=LinkSource.EXTRACTED)
    MemoryExtraction.objects.update_or_create(memory_id=memory.pk, defaults={
        "status": "processing", "generation": 7, "attempts": 1})
    real_better = entity_services._better

    def slowly(*args):  # the merge holds what it took for a while
        time.sleep(0.5)
        return real_better(*args)

    monkeypatch.setattr(entity_services, "_better", slowly)
    monkeypatch.setattr(pipeline, "run_extractor", lambda tool, text: ([], "rules", ""))
    assert merge_racing_extraction([acme, globex], memory, generation=7, after=0.3) == []
    assert MemoryExtraction.objects.get(memory_id=memory.pk).status == "done"


def test_the_lost_request_sweep_never_overwrites_a_request_made_meanwhile(client):
    """The sweep read a memory without a record; its write's own request landed before the
    sweep's: that request (its generation) stands, and nothing is asked twice."""
    fresh = write(client, "Requested just now.", auto_extract_entities=False)
    lost = write(client, "Never requested.", auto_extract_entities=False)
    pipeline.extraction_request(memory_ids=[fresh])
    generation = MemoryExtraction.objects.get(memory_id=fresh).generation
    assert pipeline._request([fresh, lost], only_missing=True) == 1
    assert MemoryExtraction.objects.get(memory_id=fresh).generation == generation
    assert MemoryExtraction.objects.get(memory_id=lost).status == "pending"


@pytest.mark.postgres
def test_an_extraction_racing_a_merge_links_no_merged_away_entity(account, monkeypatch):
    """The extraction found "Cassandra" and then waited, to write its link, for the merge
    folding Cassandra into ScyllaDB; the link then landed on the merged-away (deleted)
    entity, and the memory showed no entities. Each entity is held live before it is linked
    now, and one taken away meanwhile is looked up again."""
    from entities_app import services as entity_services
    from entities_app.extraction.base import Mention
    from entities_app.models import LinkSource
    from memories_app.services import memory_create

    text = "We moved the event store to Cassandra"
    memory = memory_create(account=account, agent_ref="bot", content=text)
    cassandra = Entity.objects.create(account=account, name="Cassandra",
                                      entity_type="technology")
    scylla = Entity.objects.create(account=account, name="ScyllaDB", entity_type="technology")
    for content in ("first", "second"):  # ScyllaDB has the most links: the merge keeps it
        EntityLink.objects.create(
            account=account, entity=scylla, source=LinkSource.MANUAL,
            memory=memory_create(account=account, agent_ref="bot", content=content))
    MemoryExtraction.objects.update_or_create(memory_id=memory.pk, defaults={
        "status": "processing", "generation": 3, "attempts": 1})
    real_merged = entity_services._metadata_merged

    def slowly(*args):  # the merge holds the entities for a while
        time.sleep(0.5)
        return real_merged(*args)

    monkeypatch.setattr(entity_services, "_metadata_merged", slowly)
    monkeypatch.setattr(pipeline, "run_extractor", lambda tool, content: (
        [Mention("Cassandra", "technology", 0.9, 28, 37)], "rules", ""))
    assert merge_racing_extraction([cassandra, scylla], memory, generation=3, after=0.2) == []
    assert Entity.objects.get(pk=cassandra.pk).deleted_at is not None  # merged away
    links = list(EntityLink.objects.filter(memory=memory).select_related("entity"))
    assert [(lk.entity.name, lk.entity.deleted_at) for lk in links] == [("Cassandra", None)]
    assert links[0].entity_id != cassandra.pk
    assert MemoryExtraction.objects.get(memory_id=memory.pk).entity_count == 1
