"""What every extractor returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mention:
    """A name found in a text: ``text[start:end] == name``; ``confidence`` is in [0, 1]."""

    name: str
    entity_type: str
    confidence: float
    start: int
    end: int


def dedupe(mentions: list[Mention]) -> list[Mention]:
    """One mention per (name, type) ignoring case, the most confident, in text order."""
    best: dict[tuple[str, str], Mention] = {}
    for m in mentions:
        key = (m.name.casefold(), m.entity_type)
        if key not in best or m.confidence > best[key].confidence:
            best[key] = m
    return sorted(best.values(), key=lambda m: (m.start, m.end))
