"""The numpy all-MiniLM-L6-v2 agrees with sentence-transformers and behaves as a sentence
encoder should. Reference vectors (data/minilm_reference.json) were produced by
sentence-transformers on PyTorch 2.13.0 (CPU) from the same model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_model

pytestmark = requires_model
REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def encoder():
    from memories_app.minilm import MiniLMEncoder

    return MiniLMEncoder()


def test_vectors_agree_with_sentence_transformers(encoder):
    texts = [item["text"] for item in REFERENCE["items"]]
    ours = encoder.encode(texts)
    for text, mine in zip(texts, ours, strict=True):
        theirs = np.asarray(next(i["embedding"] for i in REFERENCE["items"]
                                 if i["text"] == text), dtype=np.float32)
        assert float(mine @ theirs) / np.linalg.norm(theirs) >= 0.9999, text[:40]


def test_rows_are_384_float32_unit_vectors_in_input_order(encoder):
    matrix = encoder.encode(["short", "a somewhat longer sentence about queues"] * 3)
    assert matrix.shape == (6, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert np.allclose(matrix[0], matrix[2], atol=1e-6)  # float32 rounding, batch position
    assert not np.allclose(matrix[0], matrix[1])
    assert encoder.encode([]).shape == (0, 384)


def test_batches_give_the_same_vectors_as_one_at_a_time(encoder):
    texts = ["x", "The deploy failed because the migration timed out", "日本語のメモ", "a " * 300]
    together = encoder.encode(texts, batch_size=2)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(encoder):
    a, b, c = encoder.encode(["The deploy failed because the database migration timed out",
                              "Migration timeout broke the release",
                              "User prefers dark mode in the editor"])
    assert a @ b > 0.5 > a @ c + 0.3


def test_very_long_input_is_truncated_not_refused(encoder):
    vector = encoder.encode(["retry counter " * 5000])[0]
    assert np.isfinite(vector).all() and abs(np.linalg.norm(vector) - 1) < 1e-5


def test_every_layer_computes_in_float32(encoder, monkeypatch):
    """A float64 activation makes each matrix product cast the weights first: twice as slow
    for the same vectors."""
    from memories_app.minilm import MiniLMEncoder

    seen, linear = set(), MiniLMEncoder._linear

    def spy(self, x, name):
        seen.add(x.dtype)
        return linear(self, x, name)

    monkeypatch.setattr(MiniLMEncoder, "_linear", spy)
    encoder.encode(["The deploy failed because the migration timed out"])
    assert seen == {np.dtype(np.float32)}


def test_gelu_is_the_exact_erf_form_in_float32():
    import math

    from memories_app.minilm import _gelu

    x = np.concatenate([np.linspace(-10, 10, 20001), [0.0, -0.0, 60.0, -60.0]])
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    ours = _gelu(x.astype(np.float32))
    assert ours.dtype == np.float32
    assert np.abs(ours - exact).max() < 1e-6 * max(1.0, float(np.abs(x).max()))
