"""A delete that answered 200 stays deleted: updates and writes racing a delete either land
first (and are deleted with the rest) or answer 404/422; none brings a row back.

The threaded tests run on PostgreSQL, many trials each; the deterministic ones force the
losing order (a row read before a delete, written after it) and run everywhere.
"""

from __future__ import annotations

import ast
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from memories_app import embeddings
from memories_app import services as memory_services
from memories_app.embeddings import DIMENSION, Provider, normalise
from memories_app.models import Memory
from memoryrelay_site.errors import Invalid, NotFound
from sessions_app import services
from sessions_app.models import Agent, Session
from tests.conftest import make_client
from tests.sessions_app.test_concurrency import run_together

TRIALS = 25


# --- The losing order, forced (every database) ---------------------------------------------


def test_updating_a_memory_read_before_its_delete_is_a_404_and_it_stays_deleted(memory):
    stale = Memory.objects.get(pk=memory.pk)
    memory_services.memory_delete(memory=Memory.objects.get(pk=memory.pk))
    with pytest.raises(NotFound):
        memory_services.memory_update(memory=stale, changes={"importance": 0.9})
    assert Memory.objects.get(pk=memory.pk).deleted_at is not None


def test_updating_an_agent_read_before_its_delete_is_a_404_and_it_stays_deleted(agent):
    stale = Agent.objects.get(pk=agent.pk)
    services.agent_delete(agent=Agent.objects.get(pk=agent.pk))
    with pytest.raises(NotFound):
        services.agent_update(agent=stale, changes={"description": "back?"})
    assert Agent.objects.get(pk=agent.pk).deleted_at is not None


def test_a_memory_update_writes_only_the_fields_it_changes(memory):
    stale = Memory.objects.get(pk=memory.pk)
    Memory.objects.filter(pk=memory.pk).update(metadata={"other": "writer"})
    memory_services.memory_update(memory=stale, changes={"importance": 0.9})
    stored = Memory.objects.get(pk=memory.pk)
    assert stored.metadata == {"other": "writer"}
    assert (stored.importance, stored.tier) == (0.9, "hot")


def test_an_agent_update_writes_only_the_fields_it_changes(agent):
    stale = Agent.objects.get(pk=agent.pk)
    Agent.objects.filter(pk=agent.pk).update(metadata={"other": "writer"})
    services.agent_update(agent=stale, changes={"description": "new"})
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.metadata, stored.description) == ({"other": "writer"}, "new")


def test_deleting_a_memory_twice_is_a_404_the_second_time(memory):
    stale = Memory.objects.get(pk=memory.pk)
    first = memory_services.memory_delete(memory=Memory.objects.get(pk=memory.pk))
    with pytest.raises(NotFound):
        memory_services.memory_delete(memory=stale)
    assert Memory.objects.get(pk=memory.pk).deleted_at == first.deleted_at


def test_ending_or_summarizing_a_session_read_before_its_delete_is_a_404(session, memory):
    stale = Session.objects.get(pk=session.pk)
    services.session_delete(session=Session.objects.get(pk=session.pk))
    with pytest.raises(NotFound):
        services.session_end(session=stale, summary="late")
    with pytest.raises(NotFound):
        services.session_summarize(session=stale)
    stored = Session.objects.get(pk=session.pk)
    assert (stored.status, stored.summary) == ("active", None)


def test_a_write_into_a_session_deleted_after_the_request_was_checked_is_refused(
        account, session, monkeypatch):
    """The request's checks pass; the delete lands before the write's transaction."""
    real = memory_services.embedding_of

    def embed_then_delete(text):
        services.session_delete(session=Session.objects.get(pk=session.pk),
                                cascade_memories=True)
        return real(text)

    monkeypatch.setattr(memory_services, "embedding_of", embed_then_delete)
    with pytest.raises(Invalid) as refused:
        memory_services.memory_create(account=account, agent_ref="writer", content="late",
                                      session_id=session.id)
    assert refused.value.field == "session_id"
    assert not Memory.objects.live().filter(session=session).exists()


def _embedding_then_agent_delete(monkeypatch, agent):
    real = memory_services.embedding_of

    def embed_then_delete(text):
        services.agent_delete(agent=Agent.objects.get(pk=agent.pk))
        return real(text)

    monkeypatch.setattr(memory_services, "embedding_of", embed_then_delete)


def test_a_write_for_an_agent_deleted_after_the_request_was_checked_is_refused(
        account, agent, monkeypatch):
    """Named by its UUID, the deleted agent is a 404; nothing lands under it."""
    _embedding_then_agent_delete(monkeypatch, agent)
    with pytest.raises(NotFound):
        memory_services.memory_create(account=account, agent_ref=str(agent.pk), content="late")
    assert not Memory.objects.live().filter(agent=agent).exists()
    assert not Agent.objects.filter(name=str(agent.pk)).exists()


def test_a_write_by_name_after_its_agent_was_deleted_goes_to_a_new_agent(account, agent,
                                                                         monkeypatch):
    """Named by its name, the write lands after the delete, as a later write would: under
    a new agent of that name, never under the deleted one."""
    _embedding_then_agent_delete(monkeypatch, agent)
    memory = memory_services.memory_create(account=account, agent_ref=agent.name,
                                           content="late")
    assert memory.agent_id != agent.pk and memory.agent.name == agent.name
    assert not Memory.objects.live().filter(agent=agent).exists()


def test_a_session_for_an_agent_deleted_before_its_write_is_refused(account, agent,
                                                                   monkeypatch):
    real = services.agent_ref_checked

    def check_then_delete(ref, field="agent_id"):
        services.agent_delete(agent=Agent.objects.get(pk=agent.pk))
        return real(ref, field)

    monkeypatch.setattr(services, "agent_ref_checked", check_then_delete)
    with pytest.raises(NotFound):
        services.session_create(account=account, agent_ref=str(agent.pk))
    assert not Session.objects.live().filter(agent=agent).exists()


def _service_modules() -> list[Path]:
    root = Path(settings.BASE_DIR)
    return [*sorted(root.glob("*_app/services.py")), root / "memoryrelay_site/services.py"]


def test_every_save_in_a_service_names_its_fields():
    """The rule for every model added later: a service never writes back a whole row it
    read earlier (which would revive a row deleted meanwhile)."""
    offenders = []
    for path in _service_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "save"
                    and not any(k.arg == "update_fields" for k in node.keywords)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert len(_service_modules()) >= 3 and offenders == []


# --- Real threads (PostgreSQL) --------------------------------------------------------------


class InstantEmbeddings(Provider):
    """Vectors at no cost, so the trials time the database, not the model."""

    name = "instant"
    available = True

    def embed(self, texts):
        return normalise(np.ones((len(texts), DIMENSION)))


@pytest.fixture
def instant_embeddings(monkeypatch):
    provider = InstantEmbeddings()
    monkeypatch.setattr(embeddings, "get_provider", lambda: provider)
    monkeypatch.setattr(memory_services, "get_provider", lambda: provider)


def _race(*calls):
    """Runs each call in its own thread, released together; returns their results."""
    return run_together(len(calls), lambda i: calls[i]())


def _status(method, url: str, body: dict | None = None) -> int:
    response = method(url) if body is None else method(url, body, format="json")
    return response.status_code


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("instant_embeddings")
def test_a_memory_deleted_while_it_is_updated_stays_deleted(account, api_key):
    client_a, client_b = make_client(api_key), make_client(api_key)
    deleted = 0
    for trial in range(TRIALS):
        memory_id = client_a.post("/v1/memories", {"agent_id": "racer", "content": f"m {trial}"},
                                  format="json").json()["id"]
        url = f"/v1/memories/{memory_id}"
        send = client_a.patch if trial % 2 else client_a.put
        body = {"content": f"edited {trial}"} if trial % 3 else {"importance": 0.9}
        update, delete = _race(partial(_status, send, url, body),
                               partial(_status, client_b.delete, url))
        assert update in (200, 404) and delete in (200, 404), (update, delete)
        if delete == 200:
            deleted += 1
            assert Memory.objects.get(pk=memory_id).deleted_at is not None, trial
            assert client_a.get(url).status_code == 404
    assert deleted == TRIALS  # the update never blocks the delete


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("instant_embeddings")
def test_an_agent_deleted_while_it_is_updated_stays_deleted(account, api_key):
    client_a, client_b = make_client(api_key), make_client(api_key)
    for trial in range(TRIALS):
        agent_id = client_a.post("/v1/agents", {"name": f"agent-{trial}"},
                                 format="json").json()["id"]
        url = f"/v1/agents/{agent_id}"
        send = client_a.patch if trial % 2 else client_a.put
        body = {"description": f"d {trial}", "metadata": {"t": trial}}
        update, delete = _race(partial(_status, send, url, body),
                               partial(_status, client_b.delete, url))
        assert update in (200, 404) and delete == 200, (update, delete)
        assert Agent.objects.get(pk=agent_id).deleted_at is not None, trial
        assert client_a.get(url).status_code == 404


WRITERS = 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("instant_embeddings")
def test_writes_racing_a_cascade_session_delete_leave_no_live_memory_in_it(account, api_key):
    clients = [make_client(api_key) for _ in range(WRITERS + 1)]
    landed = refused = 0
    for trial in range(TRIALS):
        session_id = clients[0].post("/v1/sessions", {"agent_id": "owner"},
                                     format="json").json()["id"]

        def write(i, trial=trial, session_id=session_id):
            body = {"agent_id": f"writer-{i}", "content": f"note {trial}.{i}",
                    "session_id": session_id}
            return clients[i].post("/v1/memories", body, format="json").status_code

        def delete(session_id=session_id):
            return clients[WRITERS].delete(f"/v1/sessions/{session_id}?cascade_memories=true"
                                           ).status_code

        *writes, deleted = _race(*(lambda i=i: write(i) for i in range(WRITERS)), delete)
        assert deleted == 200 and set(writes) <= {201, 422}, (writes, deleted)
        landed += writes.count(201)
        refused += writes.count(422)
        assert not Memory.objects.live().filter(session_id=session_id).exists(), trial
    assert landed + refused == TRIALS * WRITERS
    body = clients[0].post("/v1/memories/search", {"query": "note", "search_mode": "keyword"},
                           format="json").json()
    assert body["data"] == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("instant_embeddings")
def test_writes_racing_an_agent_delete_leave_no_live_memory_or_session_of_it(account, api_key):
    clients = [make_client(api_key) for _ in range(WRITERS + 1)]
    for trial in range(TRIALS):
        agent_id = clients[0].post("/v1/agents", {"name": f"doomed-{trial}"},
                                   format="json").json()["id"]

        def write(i, trial=trial, agent_id=agent_id):
            if i == 0:
                return clients[i].post("/v1/sessions", {"agent_id": agent_id},
                                       format="json").status_code
            body = {"agent_id": agent_id, "content": f"note {trial}.{i}"}
            return clients[i].post("/v1/memories", body, format="json").status_code

        def delete(agent_id=agent_id):
            return clients[WRITERS].delete(f"/v1/agents/{agent_id}").status_code

        *writes, deleted = _race(*(lambda i=i: write(i) for i in range(WRITERS)), delete)
        assert deleted == 200 and set(writes) <= {201, 404}, (writes, deleted)
        assert not Memory.objects.live().filter(agent_id=agent_id).exists(), trial
        assert not Session.objects.live().filter(agent_id=agent_id).exists(), trial
    assert connection.vendor == "postgresql"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_memory_delete_that_waited_on_a_write_is_timed_after_it(memory):
    """A write holds the memory's row (an entity link moving its updated_at); a delete
    waits for it, and its time is read after: the deleted row is the newest copy."""
    import threading
    import time

    from django.db import transaction
    from django.utils import timezone

    held, written = threading.Event(), []

    def write():
        try:
            with transaction.atomic():
                Memory.objects.select_for_update().get(pk=memory.pk)
                held.set()
                time.sleep(0.3)
                written.append(timezone.now())
                Memory.objects.filter(pk=memory.pk).update(updated_at=written[0])
        finally:
            connection.close()

    def delete():
        try:
            held.wait(5)
            memory_services.memory_delete(memory=Memory.objects.get(pk=memory.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=write), threading.Thread(target=delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = Memory.objects.get(pk=memory.pk)
    assert row.deleted_at is not None and row.updated_at == row.deleted_at >= written[0]
