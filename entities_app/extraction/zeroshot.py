"""Zero-shot typing of the capitalised spans the rules could not type, with the local
all-MiniLM-L6-v2 (the embedding model the server already ships; nothing is downloaded).

Each span is embedded twice: alone, and as its sentence with the span's words kept in
place. A span's score for a type is its cosine to that type's prototype: the mean
embedding of short descriptions of the type ("a software company", ...), alone and in
context. The best type wins when it scores at least ``threshold`` and beats the runner-up
by ``margin``; otherwise the span is dropped (precision over recall). One batch per memory:
a few milliseconds on a CPU."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

logger = logging.getLogger("memoryrelay.entities")

# Short descriptions of each type (a span is compared with "<span>, <description>").
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "person": ("a person", "a colleague", "a customer contact", "a man", "a woman",
               "an engineer", "a manager"),
    "organization": ("a company", "a business", "a corporation", "a startup",
                     "a customer company", "a vendor", "an enterprise", "a firm"),
    "technology": ("a software library", "a programming language", "a database",
                   "a developer tool", "a framework", "an open-source project",
                   "a cloud service"),
    "project": ("an internal project", "a codename for a project", "a software service"),
    "location": ("a city", "a country", "a region", "a place"),
    "product": ("a software product", "an app", "a SaaS product", "a subscription plan"),
}


class ZeroShotTyper:
    model = "all-MiniLM-L6-v2"

    def __init__(self, encoder, *, threshold: float = 0.35, margin: float = 0.02,
                 types: Sequence[str] | None = None):
        self.encoder = encoder
        self.threshold, self.margin = threshold, margin
        self.types = tuple(types or PROTOTYPES)
        self._vocab = _vocab(encoder)

    def is_common_word(self, word: str) -> bool:
        """A whole word of the model's (uncased, English) vocabulary: a sentence's first
        word that is one is more likely "Customer" than a name."""
        return word.casefold() in self._vocab

    def __call__(self, text: str, candidates) -> list[tuple[str, float] | None]:
        if not candidates:
            return []
        vectors = self.encoder.encode([c.name for c in candidates])
        scores = vectors @ _prototypes(self.encoder, self.types).T
        out = []
        for row in scores:
            order = np.argsort(row)[::-1]
            best, second = float(row[order[0]]), float(row[order[1]])
            if best >= self.threshold and best - second >= self.margin:
                confidence = min(0.5 + (best - second) * 2, 0.8)
                out.append((self.types[order[0]], round(confidence, 3)))
            else:
                out.append(None)
        return out


def _prototypes(encoder, types: tuple[str, ...]) -> np.ndarray:
    key = (id(encoder), types)
    with _cache_lock:
        if key not in _cache:
            rows = []
            for t in types:
                vectors = encoder.encode(list(PROTOTYPES[t]))
                mean = vectors.mean(0)
                rows.append(mean / np.linalg.norm(mean))
            _cache[key] = np.stack(rows).astype(np.float32)
        return _cache[key]


_cache: dict = {}
_cache_lock = threading.Lock()


def _vocab(encoder) -> frozenset[str]:
    try:
        vocab = json.loads(encoder.tokenizer.to_str())["model"]["vocab"]
    except (AttributeError, KeyError, ValueError):
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha() and not w.startswith("##"))


@lru_cache(maxsize=1)
def _own_encoder():
    from memories_app.minilm import MiniLMEncoder

    return MiniLMEncoder()


def encoder_or_none():
    """The server's local MiniLM encoder when it is the embedding provider (one copy of the
    weights per process), else one of our own if the model is installed, else None."""
    try:
        from django.conf import settings

        if settings.configured:
            from memories_app.embeddings import LocalMiniLM, get_provider

            provider = get_provider()
            if isinstance(provider, LocalMiniLM):
                return provider._load()
    except Exception:  # noqa: BLE001 - outside a configured project, fall through
        logger.debug("no embedding provider to share", exc_info=True)
    from memories_app.embeddings import local_model_installed

    if not local_model_installed():
        return None
    return _own_encoder()
