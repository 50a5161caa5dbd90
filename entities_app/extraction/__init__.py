"""Entity extraction from a memory's text, offline: ``extract(text) -> list[Mention]``.

Extractors (each with ``method``, ``model`` and ``extract(text)``):

- ``rules+zeroshot`` (the default): rules (``rules.py``: ticket ids, curated gazetteers,
  code-ish tokens, capitalised spans typed by company suffixes, first names, "Project X")
  and, for the capitalised spans the rules cannot type, zero-shot typing by the local
  all-MiniLM-L6-v2 (``zeroshot.py``). Without the model installed it is ``rules`` alone.
- ``rules``: the rules alone.
- ``spacy``: spaCy's small English pipeline, for comparison only (not a dependency).
- ``llm``: an OpenAI-compatible chat endpoint (MEMORYRELAY_EXTRACTION_LLM_URL, ``_MODEL``,
  ``_API_KEY``, ``_TIMEOUT``), falling back to ``rules`` when it fails (``llm.py``).

benchmarks/entity_extraction_eval.py measures them on the labelled memories."""

from __future__ import annotations

import threading

from .base import Mention

__all__ = ["DEFAULT", "EXTRACTORS", "Mention", "available", "extract", "get_extractor"]

DEFAULT = "rules"
EXTRACTORS = ("rules", "rules+zeroshot", "spacy", "llm")

_lock = threading.Lock()
_built: dict[str, object] = {}


def available(name: str) -> bool:
    if name == "spacy":
        from .spacy_ner import spacy_installed

        return spacy_installed()
    if name == "llm":
        from django.conf import settings

        return settings.configured and bool(
            getattr(settings, "MEMORYRELAY_EXTRACTION_LLM_URL", ""))
    return name in EXTRACTORS


def get_extractor(name: str = DEFAULT):
    """The extractor ``name``, built once per process (the model loads on first use)."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; one of {', '.join(EXTRACTORS)}")
    with _lock:
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]


def get_extractor_unlocked(name: str):
    """``get_extractor`` for use while building another (the lock is held)."""
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


def reset() -> None:
    """Forgets the built extractors (settings changed, as in tests)."""
    with _lock:
        _built.clear()


def _build(name: str):
    from .rules import RuleExtractor

    if name == "spacy":
        from .spacy_ner import SpacyExtractor

        return SpacyExtractor()
    if name == "rules":
        return RuleExtractor()
    if name == "llm":
        from django.conf import settings

        from .llm import LLMExtractor

        return LLMExtractor(url=settings.MEMORYRELAY_EXTRACTION_LLM_URL,
                            model=settings.MEMORYRELAY_EXTRACTION_LLM_MODEL,
                            api_key=settings.MEMORYRELAY_EXTRACTION_LLM_API_KEY,
                            timeout=settings.MEMORYRELAY_EXTRACTION_LLM_TIMEOUT,
                            fallback=get_extractor_unlocked("rules"))
    from .zeroshot import ZeroShotTyper, encoder_or_none

    encoder = encoder_or_none()
    if encoder is None:
        return RuleExtractor()
    typer = ZeroShotTyper(encoder)
    extractor = RuleExtractor(typer=typer, common_words=typer.is_common_word)
    extractor.method, extractor.model = "rules+zeroshot", typer.model
    return extractor


def extract(text: str) -> list[Mention]:
    """The default extractor's mentions in ``text``, in text order."""
    return get_extractor().extract(text)
