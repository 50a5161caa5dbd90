"""Serializers with ReusedFields build their fields once per class and thread, and stay
correct when instances follow each other and when threads validate at the same time."""

from __future__ import annotations

import threading

from memories_app.serializers import MemoryCreateInput


def test_fields_are_built_once_per_thread_and_bound_to_each_new_instance():
    first = MemoryCreateInput(data={})
    second = MemoryCreateInput(data={})
    assert first.fields is not None
    assert second.fields["content"] is first.fields["content"]  # not deep-copied again
    assert second.fields["content"].parent is second
    assert second.fields["content"].root is second

    seen = {}
    thread = threading.Thread(target=lambda: seen.update(
        content=MemoryCreateInput(data={}).fields["content"]))
    thread.start()
    thread.join()
    assert seen["content"] is not first.fields["content"]  # each thread has its own


def test_successive_validations_do_not_leak_into_each_other():
    bad = MemoryCreateInput(data={"agent_id": "a", "content": "x", "importance": "high"})
    assert not bad.is_valid()
    assert set(bad.errors) == {"importance"}
    good = MemoryCreateInput(data={"agent_id": "b", "content": "y", "importance": 0.7})
    assert good.is_valid(), good.errors
    assert (good.validated_data["agent_id"], good.validated_data["importance"]) == ("b", 0.7)
    missing = MemoryCreateInput(data={"content": "z"})
    assert not missing.is_valid() and set(missing.errors) == {"agent_id"}


def test_threads_validating_at_once_each_get_their_own_answer():
    failures = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(200):
            body = {"agent_id": f"agent-{n}-{i}", "content": f"memory {n} {i}",
                    "importance": (n % 10) / 10}
            if i % 7 == 0:
                body["importance"] = "not a number"
            serializer = MemoryCreateInput(data=body)
            valid = serializer.is_valid()
            if i % 7 == 0:
                if valid or set(serializer.errors) != {"importance"}:
                    failures.append((n, i, "invalid body passed"))
            elif not valid or serializer.validated_data["agent_id"] != body["agent_id"]:
                failures.append((n, i, serializer.errors))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
