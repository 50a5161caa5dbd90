"""Rule-based extraction: ticket ids, curated gazetteers (``gazetteer.py``), code-ish tokens
and capitalised spans typed by their shape (company suffixes, first names, "Project X").

Spans the rules find but cannot type are handed to an optional ``typer`` (the zero-shot
embedding typer, ``zeroshot.py``); without one they are dropped, which favours precision."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from . import gazetteer
from .base import Mention, dedupe

# A word: letters/digits with inner . + # / ' : - (Node.js, C++, HTTP/2, re:Invent, O'Connor),
# optionally led by . # @ (.env, .NET, #data-alerts).
TOKEN = re.compile(r"(?<![\w.#@])[.#@]?[^\W_][\w.+#/'’:&-]*[\w+#]|(?<![\w.#@])[.#@]?[^\W_]")
TICKET = re.compile(r"\b[A-Z][A-Z0-9]{1,9}-\d{1,7}\b")
FILE = re.compile(r"\.(?:py|toml|js|ts|tsx|jsx|json|ya?ml|md|txt|env|cfg|ini|lock|"
                  r"sql|csv|pdf|docx?|xlsx?|sh|go|rs|rb|java|kt|swift|html|css|conf)$")
DOMAIN = re.compile(r"^[a-z0-9-]+\.(?:io|com|org|net|dev|ai|app|co|de|fr|uk|eu)$")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
CAMEL = re.compile(r"^[A-Za-z][a-z0-9]*[A-Z][A-Za-z0-9]*$")  # WeasyPrint, iPadOS, MinIO
DOTJS = re.compile(r"^[A-Z][\w]*\.js$")
# How much text around a capitalised span its typing reads (a cue word before it, a verb
# after it): a bounded window, so one long text costs linear time, not a copy per span.
CONTEXT = 120
# At most this many distinct untyped names go to the typer (each is a model call's row).
TYPED_MAX = 200

ORG_SUFFIXES = frozenset("""Inc Inc. Corp Corp. Corporation Ltd Ltd. LLC GmbH PLC AG SA SAS BV
Labs Technologies Technology Systems Industries Group Holdings Bank Capital Ventures Partners
Solutions Software Analytics Logistics Health Healthcare Traders Trading Consulting Assurance
Insurance Media Studios Studio Foundation University Institute Enterprises Dynamics Networks
Robotics Pharmaceuticals Pharma Motors Airlines Energy Retail Foods Financial Security
Services Associates Agency Collective Cooperative Co.""".split())
PROJECT_HEADS = frozenset({"Project", "Operation", "Initiative"})
CODE_SUFFIXES = ("Service", "Controller", "Manager", "Handler", "Repository", "Factory",
                 "Client", "Error", "Exception", "Serializer", "View", "Model", "Mixin")
PROJECT_WORDS = ("service", "api", "worker", "frontend", "backend", "gateway", "app", "sdk",
                 "cli", "web", "portal")
CONNECTORS = frozenset({"of", "&", "de", "van", "von", "da", "del", "der", "la", "le"})
# Capitalised words that are never entities by themselves.
STOP_CAPS = frozenset("""I I'm I've I'll A An The This That These Those It Its We Our Us You
Your They Their He She His Her Him My Me Mr Mrs Ms Dr Monday Tuesday Wednesday Thursday
Friday Saturday Sunday January February March April May June July August September October
November December Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Q1 Q2 Q3 Q4 H1 H2 FY
API APIs UTC GMT CET PST EST PT ET AM PM EOD EOW ETA FYI TODO TBD NB PS PR PRs MR CEO CTO
CFO COO CMO CPO VP SVP EVP HR QA UI UX ID IDs URL URLs URI CLI SDK SDKs OS DB CPU GPU RAM
SSD OK No Yes Not Note Heads Update Decision Decided Reminder Remember Prefers Prefer User
Customer Customers Client Meeting Notes Team Hi Hello Thanks Please Also Then So But And Or
If When While After Before Since Because Use Using Never Always Every Each All Some Most New
Old Next Last First Second Third One Two Three Eastern Western Pacific Central Mountain
Staging Production Prod Dev Beta Alpha EU US English Spanish German French Italian
Portuguese Dutch Chinese Japanese Korean Russian Arabic Hindi American British European
Asian African Canadian Australian Indian""".split())
# Words before an unknown capitalised name that make it an organisation ("at Initech").
# "from" counts after a name only ("Sarah from Initech", not "moved from Rollbar"), "with"
# only before a possessive ("a call with Hooli's team").
ORG_CUES = re.compile(r"(?:\b(?:at|customer|client|partner|competitor|vendor|supplier|"
                      r"reseller|acquired|joined)|[A-Z][\w'’-]+ from)\s+$", re.IGNORECASE)
WITH_POSSESSIVE = re.compile(r"\bwith\s+$", re.IGNORECASE)
# What follows two capitalised words that makes them a person ("Ines Carvalho will run").
PERSON_NEXT = re.compile(r"^(?:'s\s)?\s*(?:from|at|said|says|asked|asks|wants|wanted|"
                         r"prefers|preferred|will|would|is|was|joined|approved|leads|owns|"
                         r"thinks|agreed|confirmed|reported|wrote|needs|noticed|runs)\b")


@dataclass
class Candidate:
    start: int
    end: int
    name: str
    before: str  # the text before the span (for context rules)
    after: str = ""  # and after it


def _entries(block: str) -> list[tuple[str, bool]]:
    out = []
    for line in block.strip().splitlines():
        line = line.strip()
        if line:
            exact = line.startswith("=")
            name = line.lstrip("=")
            out.append((name, exact or len(name) <= 2))
    return out


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, str], dict[str, str], int]:
    """(exact-case name -> type, casefolded name -> type, longest entry in words). The
    first list naming a name wins (technology over product over organisation ...)."""
    exact: dict[str, str] = {}
    folded: dict[str, str] = {}
    longest = 1
    lists = (("document", gazetteer.DOCUMENT), ("event", gazetteer.EVENT),
             ("metric", gazetteer.METRIC), ("technology", gazetteer.TECHNOLOGY),
             ("product", gazetteer.PRODUCT), ("organization", gazetteer.ORGANIZATION),
             ("location", gazetteer.LOCATION), ("concept", gazetteer.CONCEPT))
    for entity_type, block in lists:
        for name, case_sensitive in _entries(block):
            exact.setdefault(name, entity_type)
            if not case_sensitive:
                folded.setdefault(name.casefold(), entity_type)
            longest = max(longest, len(name.split()))
    return exact, folded, longest


@lru_cache(maxsize=1)
def _first_names() -> frozenset[str]:
    return frozenset(gazetteer.FIRST_NAMES.split())


Typer = Callable[[str, Sequence[Candidate]], list[tuple[str, float] | None]]


class RuleExtractor:
    """``extract(text)`` -> mentions. ``typer(text, candidates)`` types the capitalised
    spans the rules leave untyped: a (type, confidence) or None (dropped) for each."""

    method = "rules"
    model = ""

    def __init__(self, typer: Typer | None = None, common_words: Callable[[str], bool] | None
                 = None):
        self.typer = typer
        self.common = common_words or (lambda word: False)

    def extract(self, text: str) -> list[Mention]:
        """Linear in the text's length: every look around a token reads a bounded window."""
        tokens = _tokens(text)
        taken = [False] * len(tokens)
        found: list[Mention] = []
        found += self._tickets(text, tokens, taken)
        found += self._gazetteer(text, tokens, taken)
        found += self._codeish(text, tokens, taken)
        spans = self._capitalised(text, tokens, taken)
        untyped: list[Candidate] = []
        for cand in spans:
            typed = self._type_span(cand)
            if typed is None:
                untyped.append(cand)
            else:
                found.append(Mention(cand.name, typed[0], typed[1], cand.start, cand.end))
        if untyped and self.typer is not None:
            first = {}  # each distinct name typed once, the first TYPED_MAX of them
            for cand in untyped:
                if cand.name not in first and len(first) < TYPED_MAX:
                    first[cand.name] = cand
            types = dict(zip(first, self.typer(text, list(first.values())), strict=True))
            for cand in untyped:
                typed = types.get(cand.name)
                if typed is not None:
                    found.append(Mention(cand.name, typed[0], typed[1], cand.start, cand.end))
        return dedupe(found)

    # -- passes, each marks the tokens it used ------------------------------------------

    def _tickets(self, text, tokens, taken) -> list[Mention]:
        out = []
        starts = [s for s, _, _ in tokens]
        for match in TICKET.finditer(text):
            out.append(Mention(match.group(), "document", 0.95, match.start(), match.end()))
            # the tokens overlapping the match: from the last one starting before its start
            i = max(0, bisect.bisect_right(starts, match.start()) - 1)
            while i < len(tokens) and tokens[i][0] < match.end():
                if tokens[i][1] > match.start():
                    taken[i] = True
                i += 1
        return out

    def _gazetteer(self, text, tokens, taken) -> list[Mention]:
        exact, folded, longest = _lexicon()
        out = []
        i = 0
        while i < len(tokens):
            hit = None
            for n in range(min(longest, len(tokens) - i), 0, -1):
                if any(taken[i:i + n]) or not _adjacent(text, tokens, i, n):
                    continue
                phrase = text[tokens[i][0]:tokens[i + n - 1][1]]
                entity_type = exact.get(phrase)
                confidence = 0.9
                if entity_type is None:
                    entity_type = folded.get(phrase.casefold())
                    confidence = 0.85
                if entity_type is None and phrase.endswith("s") and phrase[-2:-1].isupper():
                    entity_type = exact.get(phrase[:-1])  # "JWTs", "A100s"
                    phrase = phrase[:-1]
                if entity_type is not None:
                    hit = (n, phrase, entity_type, confidence)
                    break
            if hit is None:
                i += 1
                continue
            n, phrase, entity_type, confidence = hit
            start = tokens[i][0]
            end = start + len(phrase)
            out.append(Mention(phrase, entity_type, confidence, start, end))
            for k in range(i, i + n):
                taken[k] = True
            i += n
        return out

    def _codeish(self, text, tokens, taken) -> list[Mention]:
        out = []
        for i, (start, end, word) in enumerate(tokens):
            if taken[i]:
                continue
            typed = _code_type(word)
            if typed is not None:
                out.append(Mention(word, typed[0], typed[1], start, end))
                taken[i] = True
        return out

    def _capitalised(self, text, tokens, taken) -> list[Candidate]:
        spans: list[list[int]] = []
        current: list[int] = []
        for i, (_start, _end, word) in enumerate(tokens):
            joinable = current and _adjacent(text, tokens, current[-1], 2) and i == current[-1] + 1
            if not taken[i] and _is_cap(word):
                if not joinable:
                    current = []
                    spans.append(current)
                current.append(i)
            elif (not taken[i] and word in CONNECTORS and joinable and i + 1 < len(tokens)
                  and _is_cap(tokens[i + 1][2]) and not taken[i + 1]):
                current.append(i)
            else:
                current = []
        out = []
        for span in filter(None, spans):
            span = self._trim(text, tokens, span)
            if span:
                start, end = tokens[span[0]][0], tokens[span[-1]][1]
                out.append(Candidate(start, end, text[start:end],
                                     text[max(0, start - CONTEXT):start], text[end:end + CONTEXT]))
        return out

    def _trim(self, text, tokens, span: list[int]) -> list[int]:
        """Drops stop words and a sentence's first word when it is a common word."""
        words = [tokens[i][2] for i in span]
        while span and words[0] in STOP_CAPS:
            span, words = span[1:], words[1:]
        while span and (words[-1] in STOP_CAPS or words[-1] in CONNECTORS):
            span, words = span[:-1], words[:-1]
        if not span:
            return []
        start = tokens[span[0]][0]
        initial = _starts_sentence(text[max(0, start - CONTEXT):start], start <= CONTEXT)
        if (initial and words[0] not in _first_names() and words[-1] not in ORG_SUFFIXES
                and words[0] not in PROJECT_HEADS and self.common(words[0])):
            span, words = span[1:], words[1:]
            while span and words[0] in CONNECTORS:
                span, words = span[1:], words[1:]
        if not span or all(w in ORG_SUFFIXES for w in words):
            return []
        return span

    def _type_span(self, cand: Candidate) -> tuple[str, float] | None:
        words = cand.name.split()
        if len(words) >= 2 and words[-1] in ORG_SUFFIXES:
            return "organization", 0.85
        if words[0] in PROJECT_HEADS and len(words) >= 2:
            return "project", 0.85
        if words[0] in _first_names() and len(words) <= 3 and all(
                w[0].isupper() for w in words):
            return "person", 0.85 if len(words) >= 2 else 0.75
        if len(words) <= 3 and (ORG_CUES.search(cand.before) or (
                WITH_POSSESSIVE.search(cand.before) and cand.after.startswith(("'s", "’s")))):
            return "organization", 0.65
        if (len(words) == 2 and all(w.isalpha() and w.istitle() for w in words)
                and PERSON_NEXT.match(cand.after)):
            return "person", 0.7
        return None


def _tokens(text: str) -> list[tuple[int, int, str]]:
    out = []
    for match in TOKEN.finditer(text):
        start, end, word = match.start(), match.end(), match.group()
        for tail in ("'s", "’s"):
            if word.endswith(tail) and len(word) > 2:
                end -= 2
                word = word[:-2]
        out.append((start, end, word))
    return out


def _starts_sentence(before: str, whole: bool) -> bool:
    """Whether a word after ``before`` starts a sentence, ``whole`` saying ``before`` is
    all the text before it: at the start of the text (spaces, an opening quote or bracket
    aside), after a sentence's end (``.!?:;``, then maybe an opening quote or bracket), on
    a new line, or after a list bullet (``-``, ``•``, ``*`` ... then a space). Linear:
    regular expressions with ``\\s*$`` retried from every position took seconds on long runs
    of blanks."""
    stripped = before.rstrip()
    gap = before[len(stripped):]
    if "\n" in gap:
        return True
    if stripped and stripped[-1] in "-–—•*" and gap:
        return True
    if stripped and stripped[-1] in "\"'([":
        stripped = stripped[:-1].rstrip()
    return stripped[-1:] in (".", "!", "?", ":", ";") or (whole and not stripped)


def _adjacent(text: str, tokens, i: int, n: int) -> bool:
    """Tokens i..i+n-1 are separated by single spaces only (no punctuation between)."""
    return all(text[tokens[k][1]:tokens[k + 1][0]] == " " for k in range(i, i + n - 1))


def _is_cap(word: str) -> bool:
    return word[0].isupper() and not word.isdigit()


def _code_type(word: str) -> tuple[str, float] | None:
    if DOTJS.match(word):
        return "technology", 0.8
    if FILE.search(word) and ("." in word[1:] or word.startswith(".")):
        return "document", 0.8
    if DOMAIN.match(word):
        return "other", 0.6
    if word.startswith("#") and len(word) > 2 and not word[1:].isdigit():
        return "other", 0.6
    if SNAKE.match(word):
        return "other", 0.5
    if CAMEL.match(word) and not word.rstrip("s").isupper() and word not in STOP_CAPS:
        if word.endswith(CODE_SUFFIXES):
            return "other", 0.6
        return "technology", 0.65
    if "-" in word and word.islower() and not word[0].isdigit():
        parts = word.split("-")
        exact, folded, _ = _lexicon()
        if any(folded.get(p) == "technology" or exact.get(p) == "technology" for p in parts):
            return "technology", 0.7
        if parts[-1] in PROJECT_WORDS:
            return "project", 0.6
    return None
