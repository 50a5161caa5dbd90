"""The local model's query adapter (memories_app/query_adapter.py): its fitting, the one
shipped, and that searches read queries through it while memories are stored without it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from memories_app import query_adapter
from memories_app.embeddings import get_provider
from memories_app.models import Memory
from memories_app.query_adapter import Adapter, Group
from tests.conftest import requires_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import locomo_adapter  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic(seed, questions=40, memories=60, dimension=16):
    """Questions whose answers lie along a fixed linear map of them, among random rows: a
    correction the adapter can learn, which a plain cosine misses."""
    random = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(dimension, dimension))
    others = unit(random.normal(size=(memories - questions, dimension)))
    queries = unit(random.normal(size=(questions, dimension)))
    answers = unit(queries @ mix.T + 0.3 * random.normal(size=(questions, dimension)))
    rows = np.vstack([answers, others])
    return Group(queries, rows, [[i] for i in range(questions)])


def test_the_gradients_are_those_of_the_loss():
    random = np.random.default_rng(1)
    groups = [synthetic(2, questions=5, memories=9, dimension=6),
              Group(unit(random.normal(size=(3, 6))), unit(random.normal(size=(7, 6))),
                    [[0, 4], [2], [6]])]
    u, v = random.normal(size=(6, 2)) * 0.3, random.normal(size=(6, 2)) * 0.3
    _, grad_u, grad_v = query_adapter.loss_and_grads(u, v, groups, tau=0.1, lam=0.05)
    step = 1e-6
    for param, grad in ((u, grad_u), (v, grad_v)):
        for index in np.ndindex(param.shape):
            keep = param[index]
            param[index] = keep + step
            up = query_adapter.loss_and_grads(u, v, groups, tau=0.1, lam=0.05)[0]
            param[index] = keep - step
            down = query_adapter.loss_and_grads(u, v, groups, tau=0.1, lam=0.05)[0]
            param[index] = keep
            assert (up - down) / (2 * step) == pytest.approx(grad[index], rel=1e-4, abs=1e-8)


def test_a_fitted_adapter_ranks_answers_higher_on_questions_it_never_saw():
    fitted = query_adapter.fit([synthetic(3), synthetic(4)], model="toy", rank=4, lam=0.01,
                               tau=0.1, epochs=200, rate=0.02)
    unseen = [synthetic(5)]
    before = locomo_adapter.recall(unseen, ks=(1, 5))
    after = locomo_adapter.recall(unseen, fitted, ks=(1, 5))
    assert after[1] > before[1] + 0.2 and after[5] > before[5]
    assert fitted.u.shape == fitted.v.shape == (16, 4) and fitted.model == "toy"


def test_an_adapter_keeps_rows_unit_and_survives_a_round_trip(tmp_path):
    random = np.random.default_rng(6)
    adapter = Adapter(random.normal(size=(8, 2)).astype(np.float32),
                      random.normal(size=(8, 2)).astype(np.float32), "toy", "made up")
    moved = adapter.apply(unit(random.normal(size=(5, 8))).astype(np.float32))
    assert moved.dtype == np.float32
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-6)
    adapter.save(tmp_path / "a.npz")
    again = query_adapter.load(tmp_path / "a.npz")
    assert np.array_equal(again.u, adapter.u) and np.array_equal(again.v, adapter.v)
    assert (again.model, again.fitted_on) == ("toy", "made up")


def test_the_shipped_adapter_is_on_by_default_for_the_local_model():
    shipped = query_adapter.configured("", MODEL, 384)
    assert shipped is not None and shipped.u.shape == (384, 8)
    assert "LoCoMo" in shipped.fitted_on and "conv-44" not in shipped.fitted_on  # 0-4 only
    # a small correction: a query keeps most of its own direction
    q = unit(np.random.default_rng(7).normal(size=(20, 384))).astype(np.float32)
    assert np.min(np.sum(shipped.apply(q) * q, axis=1)) > 0.8


def test_an_adapter_that_is_off_missing_or_for_another_model_is_not_applied(tmp_path, caplog):
    assert query_adapter.configured("off", MODEL, 384) is None
    with caplog.at_level(logging.WARNING, logger="memoryrelay.embeddings"):
        assert query_adapter.configured(str(tmp_path / "none.npz"), MODEL, 384) is None
        other = tmp_path / "other.npz"
        Adapter(np.zeros((384, 2), np.float32), np.zeros((384, 2), np.float32),
                "another-model").save(other)
        assert query_adapter.configured(str(other), MODEL, 384) is None
        narrow = tmp_path / "narrow.npz"
        Adapter(np.zeros((8, 2), np.float32), np.zeros((8, 2), np.float32), MODEL).save(narrow)
        assert query_adapter.configured(str(narrow), MODEL, 384) is None
        broken = tmp_path / "broken.npz"
        broken.write_bytes(b"not an adapter")
        assert query_adapter.configured(str(broken), MODEL, 384) is None
        poisoned = tmp_path / "poisoned.npz"
        bad = np.zeros((384, 2), np.float32)
        bad[3, 1] = np.nan
        Adapter(bad, np.zeros((384, 2), np.float32), MODEL).save(poisoned)
        assert query_adapter.configured(str(poisoned), MODEL, 384) is None
    assert len([r for r in caplog.records if "not applied" in r.getMessage()]) == 5


def test_questions_without_an_answer_are_not_fitted_on():
    group = synthetic(8, questions=6, memories=10, dimension=4)
    group.answers[2] = []
    fitted = query_adapter.fit([group], model="toy", rank=2, epochs=5)
    assert np.isfinite(fitted.u).all() and np.isfinite(fitted.v).all()
    with pytest.raises(ValueError, match="no question has an answer"):
        query_adapter.fit([Group(group.queries, group.memories, [[]] * 6)], model="toy")


QUERY = "what colours does Alex like in the editor"


@pytest.fixture
def steep(tmp_path):
    """An adapter that turns QUERY far towards another memory's meaning."""
    target, query = get_provider().embed(["The user is allergic to peanuts.", QUERY])
    path = tmp_path / "steep.npz"
    Adapter(target[:, None] * 3, query[:, None], MODEL).save(path)
    return path


@requires_model
def test_searches_read_the_query_through_the_adapter_and_memories_are_stored_without(
        client, settings, steep):
    provider = get_provider()
    texts = {"peanut": "The user is allergic to peanuts.",
             "dark": "Alex likes the editor in a dark colour scheme."}
    ids = {key: client.post("/v1/memories", {"content": text, "agent_id": "a"},
                            format="json").json()["id"] for key, text in texts.items()}
    stored = Memory.objects.get(pk=ids["dark"])
    assert np.allclose(np.asarray(stored.embedding), provider.embed([texts["dark"]])[0],
                       atol=1e-6)
    query = QUERY

    def semantic():
        response = client.post("/v1/memories/search", {"query": query,
                                                        "search_mode": "semantic"}, format="json")
        assert response.status_code == 200
        return {hit["memory"]["id"]: hit["score"] for hit in response.json()["data"]}

    settings.MEMORYRELAY_QUERY_ADAPTER = "off"
    raw = provider.embed([query])[0]
    plain = semantic()
    assert plain[ids["dark"]] == pytest.approx(float(raw @ provider.embed([texts["dark"]])[0]),
                                               abs=1e-4)
    assert max(plain, key=plain.get) == ids["dark"]
    settings.MEMORYRELAY_QUERY_ADAPTER = str(steep)
    moved = query_adapter.load(steep).apply(raw[None, :])[0]
    adapted = semantic()
    assert adapted[ids["dark"]] == pytest.approx(
        float(moved @ provider.embed([texts["dark"]])[0]), abs=1e-4)
    assert max(adapted, key=adapted.get) == ids["peanut"]  # the adapter decided
    assert all(0.0 <= score <= 1.0 for score in adapted.values())


@requires_model
def test_the_fitting_script_writes_an_adapter_the_server_takes(tmp_path, capsys):
    conversation = {
        "speaker_a": "Ana", "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a grey kitten called Pixel."},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Lovely! I started learning the cello."},
            {"speaker": "Ana", "dia_id": "D1:3", "text": "My sister moved to Porto last week."},
        ],
    }
    qa = [{"question": "What instrument is Ben learning?", "evidence": ["D1:2"], "category": 4},
          {"question": "When did Ana adopt a kitten?", "evidence": ["D1:1"], "category": 2},
          {"question": "Where does Ana's sister live?", "evidence": ["D1:3"], "category": 1}]
    data = tmp_path / "locomo10.json"
    data.write_text(json.dumps([{"sample_id": "conv-1", "conversation": conversation,
                                 "qa": qa}]))
    out = tmp_path / "adapter.npz"
    assert locomo_adapter.main(["--data", str(data), "--fit", "0", "--check", "",
                                "--epochs", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv-1: 3 turns, 3 questions" in printed
    assert "semantic, fitted 0: R@5 1.000 -> 1.000" in printed
    adapter = query_adapter.configured(str(out), MODEL, 384)
    assert adapter is not None and adapter.u.shape == (384, 8)
    assert "conv-1" in adapter.fitted_on
