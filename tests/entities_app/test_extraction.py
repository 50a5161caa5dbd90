"""The entity extractors: the rules they apply, and the default's precision on the labelled
memories (benchmarks/entity_extraction_eval.py prints the full per-type figures)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from entities_app.extraction import DEFAULT, extract, get_extractor
from tests.conftest import requires_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import entity_extraction_eval as evaluation  # noqa: E402

FLOOR = 0.8


def found(text: str, extractor=None) -> set[tuple[str, str]]:
    return {(m.name, m.entity_type) for m in (extractor or get_extractor()).extract(text)}


@pytest.mark.parametrize("split", ["all", "test", "blind", "final"])
def test_the_default_extractor_keeps_precision_on_people_organisations_and_technologies(split):
    records = evaluation.load()
    if split != "all":
        records = [r for r in records if r["split"] == split]
    predictions, _ = evaluation.run(get_extractor(DEFAULT), records)
    result = evaluation.score(records, predictions)
    floor_types = evaluation.FLOOR_TYPES if split != "blind" else ("person", "technology")
    for entity_type in floor_types:
        assert result[entity_type]["precision"] >= FLOOR, (entity_type, result[entity_type])
    assert result["all"]["recall"] >= 0.6


def test_the_labelled_set_is_large_and_consistent():
    records = evaluation.load()
    assert len(records) >= 150
    assert {r["split"] for r in records} == {"tune", "test", "blind", "final"}
    for record in records:
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["name"]


def test_mentions_point_at_their_text_with_a_confidence_in_range():
    text = "Maria Lopez from Acme Corp moved JIRA-123 to pgvector on Node.js."
    mentions = extract(text)
    assert mentions
    for m in mentions:
        assert text[m.start:m.end] == m.name
        assert 0.0 <= m.confidence <= 1.0


def test_ticket_ids_are_documents():
    assert ("JIRA-4812", "document") in found("JIRA-4812 is blocked; see also OPS-7.")
    assert ("OPS-7", "document") in found("JIRA-4812 is blocked; see also OPS-7.")


def test_code_ish_technology_names_are_found_in_any_case():
    names = found("Moved from Pinecone to pgvector; POSTGRES 16, node.js and Next.js apps.")
    assert {("pgvector", "technology"), ("POSTGRES", "technology"),
            ("node.js", "technology"), ("Next.js", "technology")} <= names


def test_ambiguous_words_match_only_with_their_capital():
    assert ("Go", "technology") in found("Two backend engineers with Go experience.")
    assert not any(n == "go" for n, _ in found("We go live on Monday with the new flow."))


def test_company_suffixes_make_organisations_and_first_names_people():
    names = found("Brightline Logistics hired Tom Becker; Priya reviewed the contract.")
    assert ("Brightline Logistics", "organization") in names
    assert ("Tom Becker", "person") in names
    assert ("Priya", "person") in names


def test_a_sentences_common_first_word_is_not_an_entity():
    names = found("Customer Globex Inc. churned. Meeting notes are in the shared folder.")
    assert names == {("Globex Inc", "organization")}


def test_unknown_names_are_typed_by_their_context():
    names = found("Beatrix Oyelaran from Quantum Freight asked for ETAs; "
                  "lunch with Zentrix's team.")
    assert ("Beatrix Oyelaran", "person") in names
    assert ("Quantum Freight", "organization") in names
    assert ("Zentrix", "organization") in names


def test_files_and_possessives():
    names = found("Stripe's SDK config lives in pyproject.toml and .env files.")
    assert {("Stripe", "organization"), ("pyproject.toml", "document"),
            (".env", "document")} <= names


def test_an_empty_or_plain_text_has_no_entities():
    assert extract("") == []
    assert extract("remember to drink water and take breaks") == []


@requires_model
def test_the_zero_shot_typer_types_well_known_names_by_meaning():
    from entities_app.extraction.rules import Candidate
    from entities_app.extraction.zeroshot import ZeroShotTyper, encoder_or_none

    typer = ZeroShotTyper(encoder_or_none())
    names = ["Berlin", "Tokyo", "Barack Obama"]
    typed = typer("", [Candidate(0, len(n), n, "") for n in names])
    assert [t[0] for t in typed] == ["location", "location", "person"]
    assert all(0 < t[1] <= 1 for t in typed)
    assert typer.is_common_word("Customer") and not typer.is_common_word("Initech")
    extractor = get_extractor("rules+zeroshot")
    assert extractor.method == "rules+zeroshot" and extractor.model == "all-MiniLM-L6-v2"
