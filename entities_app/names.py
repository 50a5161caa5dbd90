"""Entity names and types: one key for the spellings of a name, and the known types.

``entity_key`` is what makes "Acme Corp", "acme-corp", "ACME" and "Acme, Inc." one entity:
an entity is unique per account by (key, type) among live entities, and a name given again
in any of its spellings finds the entity first created with it."""

from __future__ import annotations

import re
import unicodedata

KEY_MAX = 255
ENTITY_TYPES = (
    "person", "organization", "technology", "project", "product", "location", "document",
    "metric", "event", "skill", "concept", "other",
)
ENTITY_TYPE_CHOICES = [(t, t) for t in ENTITY_TYPES]
# Other spellings clients send for a type (the MCP server and OpenClaw offer "place").
TYPE_ALIASES = {"place": "location"}

# Legal-form words dropped from the end of a name ("Acme Corp." is "Acme").
COMPANY_SUFFIXES = frozenset({
    "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "co", "gmbh", "plc",
})
# Symbols that tell technologies apart ("C", "C++", "C#"): spelled out before punctuation
# is dropped.
SPELLED = (("++", "plusplus"), ("+", "plus"), ("#", "sharp"))
WORD = re.compile(r"[^\W_]+")


def entity_key(name: str) -> str:
    """The key of ``name``: Unicode NFKC, case folded, punctuation, spaces, hyphens and dots
    dropped, and trailing company suffixes (corp, corporation, inc, incorporated, ltd,
    limited, llc, co, gmbh, plc) dropped unless nothing else is left.

    "Acme Corp", "acme-corp", "ACME", "Acme, Inc." give "acme"; "Node.js" gives "nodejs";
    "C++" gives "cplusplus" and "C#" "csharp". A name with no letter or digit keeps its
    folded text (whitespace aside), so it still has a key of its own. Keys are cut at 255
    characters (the spelled-out symbols can make a key longer than its name)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    spelled = folded
    for symbol, word in SPELLED:
        spelled = spelled.replace(symbol, f" {word} ")
    words = WORD.findall(spelled)
    while len(words) > 1 and words[-1] in COMPANY_SUFFIXES:
        words.pop()
    key = "".join(words) or "".join(folded.split())
    return key[:KEY_MAX]


def entity_type_of(value: str) -> str | None:
    """The canonical type for ``value`` (case aside, aliases resolved), or None."""
    lowered = value.strip().casefold()
    lowered = TYPE_ALIASES.get(lowered, lowered)
    return lowered if lowered in ENTITY_TYPES else None
