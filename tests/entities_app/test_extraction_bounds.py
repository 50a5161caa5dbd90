"""What one hostile memory can cost the extraction: a bounded number of entities (and so of
co-occurrence pairs), the typer asked once per distinct name, and every look around a word
reading a bounded window of the text, not the whole of it per word."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from entities_app import pipeline
from entities_app.extraction import rules
from entities_app.extraction.rules import RuleExtractor
from entities_app.graph import COOCCURRENCE
from entities_app.models import EntityLink
from tests.taskqueue import task_queue  # noqa: F401 - the fixture, on both queue backends


@pytest.mark.django_db(transaction=True)
def test_a_memory_of_thousands_of_identifiers_links_a_bounded_number(client,
                                                                    task_queue):  # noqa: F811
    content = " ".join(f"y_{i}" for i in range(600)) + " Maria Lopez from Acme Corp."
    response = client.post("/v1/memories", {"agent_id": "a", "content": content},
                           format="json")
    assert response.status_code == 201
    task_queue.run()
    links = EntityLink.objects.filter(memory_id=response.json()["id"]).select_related("entity")
    names = {link.entity.name for link in links}
    assert len(names) == pipeline.ENTITIES_MAX
    assert {"Maria Lopez", "Acme Corp"} <= names  # the most confident are kept
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {COOCCURRENCE}")  # noqa: S608 - a constant
        assert cursor.fetchone()[0] == pipeline.ENTITIES_MAX * (pipeline.ENTITIES_MAX - 1)


def test_the_typer_is_asked_once_per_distinct_name_and_at_most_typed_max():
    asked = []

    def typer(text, candidates):
        asked.append([c.name for c in candidates])
        return [None] * len(candidates)

    RuleExtractor(typer=typer).extract("Zq, " * 3000 + ", ".join(
        f"Qx{i}a Wv" for i in range(rules.TYPED_MAX + 50)))
    assert len(asked) == 1 and len(asked[0]) == rules.TYPED_MAX
    assert len(set(asked[0])) == len(asked[0]) and asked[0][0] == "Zq"


def test_candidates_carry_a_bounded_window_of_their_text(monkeypatch):
    seen = []
    real = rules.RuleExtractor._type_span

    def type_span(self, cand):
        seen.append((len(cand.before), len(cand.after)))
        return real(self, cand)

    monkeypatch.setattr(rules.RuleExtractor, "_type_span", type_span)
    RuleExtractor().extract("word " * 2000 + "Zq Hooli " + "word " * 2000)
    assert seen and all(b <= rules.CONTEXT and a <= rules.CONTEXT for b, a in seen)


# The rule _starts_sentence replaces, as a regular expression over all the text before.
OLD = re.compile(r"[.!?:;]\s*[\"'(\[]?\s*$|^\s*[\"'(\[]?\s*$|\n\s*$|[-–—•*]\s+$")


@pytest.mark.parametrize("before", [
    "", "  ", "(", " \" ", "We met. ", "We met.", "We met. (", "Done!\n", "a list:\n  ",
    "notes\n", "notes\n(", "- ", "• ", "* ", "-", "pay the bill, ", "said ", "(x) ", "end;  '",
    "x.\n\n\n  ", "word ", "ok? ", "and then ", "\n", "a - ",
])
def test_a_sentence_start_is_read_as_the_expression_read_it(before):
    assert rules._starts_sentence(before, whole=True) == bool(OLD.search(before))


def test_a_sentence_start_in_a_window_is_not_the_start_of_the_text():
    assert rules._starts_sentence("   ", whole=False) is False
    assert rules._starts_sentence("   ", whole=True) is True


@pytest.mark.parametrize("text", ["a" * 5000, "a" + "-" * 5000 + ".x", "\n" * 5000 + "x Zq x",
                                  "." + " " * 5000 + "x Zq x", "AB-1 " * 1000])
def test_hostile_texts_are_read_without_backtracking_through_them(text, monkeypatch):
    """Each regular expression is run only on a word or a bounded window: their inputs are
    recorded and none is longer than the longest word or the window."""
    longest = max(len(w) for w in re.split(r"\s+", text))
    seen = []

    class Recording:
        def __init__(self, pattern):
            self.pattern = pattern

        def __getattr__(self, name):
            method = getattr(self.pattern, name)

            def call(string, *args):
                seen.append(len(string))
                return method(string, *args)
            return call

    for name in ("FILE", "DOMAIN", "SNAKE", "CAMEL", "DOTJS", "ORG_CUES", "WITH_POSSESSIVE",
                 "PERSON_NEXT"):
        monkeypatch.setattr(rules, name, Recording(getattr(rules, name)))
    RuleExtractor().extract(text)
    assert max(seen, default=0) <= max(longest, rules.CONTEXT)
