"""The labelled retrieval set (benchmarks/data/retrieval_eval.json), run on the test
database: hybrid must beat both single modes, and each mode must do its own job."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import requires_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import retrieval_eval  # noqa: E402

pytestmark = requires_model


def test_hybrid_beats_semantic_and_keyword_on_the_labelled_set(account):
    data = retrieval_eval.load_set()
    labels = retrieval_eval.store(account, data["memories"])
    results = retrieval_eval.evaluate(account, labels, data["queries"])
    assert retrieval_eval.hybrid_wins(results), results
    assert results["hybrid"]["all_recall"] == 1.0
    assert results["keyword"]["exact_mrr"] == 1.0  # exact tokens: keywords never miss
    assert results["semantic"]["paraphrase_recall"] == 1.0  # paraphrases: meaning finds them
    assert results["keyword"]["paraphrase_recall"] < 0.7  # ...where keywords fail
    assert results["semantic"]["exact_mrr"] < 0.8  # ...and near-twin codes confuse meaning
