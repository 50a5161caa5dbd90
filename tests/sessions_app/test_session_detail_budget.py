"""Issue 7, point 7: a session detail embeds a bounded number of bytes.

``include_memories`` stops adding memories once their content and metadata pass
MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES (always at least one), says so with
``memories_has_more``, and pages on with ``memories_offset``.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from memories_app.models import Memory


def add(account, session, count, size):
    now = timezone.now()
    Memory.objects.bulk_create([
        Memory(account=account, agent=session.agent, session=session,
               content=f"{i:03d}" + "x" * (size - 3), created_at=now + timedelta(seconds=i))
        for i in range(count)
    ])


def detail(client, session, query=""):
    response = client.get(f"/v1/sessions/{session.id}?include_memories=true{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_session_detail_stops_at_the_byte_budget_and_says_so(client, account, session,
                                                              settings):
    settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES = 25_000
    add(account, session, 5, 10_000)
    seen = []
    for offset in (0, 2, 4):
        body = detail(client, session, f"&memories_offset={offset}")
        seen += [m["content"][:3] for m in body["memories"]]
        assert body["memory_count"] == 5
        assert body["memories_has_more"] is (offset < 4)
        assert len(body["memories"]) == (2 if offset < 4 else 1)
    assert seen == ["000", "001", "002", "003", "004"]


def test_one_memory_over_the_budget_still_comes_back(client, account, session, settings):
    settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES = 100
    add(account, session, 2, 10_000)
    body = detail(client, session)
    assert [m["content"][:3] for m in body["memories"]] == ["000"]
    assert body["memories_has_more"] is True


def test_memories_has_more_is_false_when_everything_fits_and_true_past_the_limit(
    client, account, session
):
    add(account, session, 3, 10)
    assert detail(client, session)["memories_has_more"] is False
    limited = detail(client, session, "&memories_limit=2")
    assert len(limited["memories"]) == 2 and limited["memories_has_more"] is True
    assert "memories_has_more" not in client.get(f"/v1/sessions/{session.id}").json()


def test_a_cut_page_loads_no_row_past_the_cut(client, account, session, settings,
                                              monkeypatch):
    settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES = 25_000
    add(account, session, 100, 10_000)
    loaded = []
    original = Memory.from_db.__func__

    def counting(cls, db, field_names, values):
        loaded.append(values[0])
        return original(cls, db, field_names, values)

    monkeypatch.setattr(Memory, "from_db", classmethod(counting))
    body = detail(client, session, "&memories_limit=1000")
    assert len(body["memories"]) == 2 and body["memories_has_more"] is True
    assert len(loaded) <= 3


def test_a_cut_page_reads_with_a_fixed_number_of_queries(client, account, session, settings,
                                                         max_queries):
    settings.MEMORYRELAY_INCLUDE_MEMORIES_MAX_BYTES = 25_000
    add(account, session, 100, 10_000)
    with max_queries(4):  # key, session, memories, their entities
        body = detail(client, session, "&memories_limit=1000")
    assert len(body["memories"]) == 2
