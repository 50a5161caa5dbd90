"""The labelled set of decisions and patterns (benchmarks/data/knowledge_eval.json), run on
the test database through decisions/check's and patterns/search's services: hybrid must
beat both single modes, and each mode must do its own job."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import requires_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import knowledge_eval  # noqa: E402
import retrieval_eval  # noqa: E402

pytestmark = requires_model


@pytest.fixture
def results(account):
    data = knowledge_eval.load_set()
    return knowledge_eval.evaluate(account, knowledge_eval.store(account, data), data)


@pytest.mark.parametrize("kind", ["decisions", "patterns"])
def test_hybrid_beats_semantic_and_keyword_on_the_labelled_set(results, kind):
    table = results[kind]
    assert retrieval_eval.hybrid_wins(table), table
    assert table["hybrid"]["all_recall"] == 1.0
    assert table["keyword"]["exact_mrr"] == 1.0  # exact tokens: keywords never miss
    assert table["semantic"]["paraphrase_recall"] == 1.0  # paraphrases: meaning finds them
    # ...where keywords fall short ("kept" finds "keep": memories_app/wordforms.py)
    assert table["keyword"]["paraphrase_recall"] < table["semantic"]["paraphrase_recall"]
    assert table["semantic"]["exact_mrr"] < 1.0  # ...and near-twin codes confuse meaning
