"""An LLM as the extractor, through any OpenAI-compatible ``/v1/chat/completions`` endpoint
(Ollama, vLLM, llama.cpp's server, OpenAI), with the rules as the fallback.

The model is asked for ``{"entities": [{"name", "type"}]}``. A name is kept only when it
occurs in the text (its first occurrence gives the offsets: nothing invented survives), and
its type only when it is one of the entity types ("place" reads as location; any other
becomes "other"). Any failure (no answer within the timeout, an HTTP error, a body that is
not that JSON) falls back to the rules for that memory, and ``run`` says which one answered,
so the memory's extraction records the method that really ran."""

from __future__ import annotations

import json
import logging
import re

from memoryrelay_site.llm import ChatEndpoint, LLMUnavailable

from ..names import ENTITY_TYPES, entity_type_of
from .base import Mention, dedupe

logger = logging.getLogger("memoryrelay.entities")

PROMPT = (
    "Extract the named entities from the user's text: people, organizations, technologies "
    "(languages, libraries, databases, tools, cloud services), projects, products, "
    "locations, documents (tickets such as JIRA-123, contracts, specs), metrics, events, "
    "skills and concepts. Answer with JSON only: "
    '{"entities": [{"name": "<exactly as written in the text>", "type": "<one of: '
    + ", ".join(ENTITY_TYPES) + '>"}]}. Leave out dates, numbers and amounts.'
)
FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


class LLMExtractor:
    method = "llm"

    def __init__(self, *, url: str, model: str, api_key: str = "", timeout: float = 20.0,
                 fallback=None, account_url: bool = False, allow_local: bool = False):
        self.endpoint = ChatEndpoint(url=url, model=model, api_key=api_key, timeout=timeout,
                                     account_url=account_url, allow_local=allow_local)
        self.url, self.model = self.endpoint.completions_url, model
        self.fallback = fallback

    def extract(self, text: str) -> list[Mention]:
        return self.run(text)[0]

    def run(self, text: str) -> tuple[list[Mention], str, str]:
        """(mentions, method, model) of whichever extractor answered."""
        try:
            return self._ask(text), self.method, self.model
        except LLMUnavailable as exc:
            if self.fallback is None:
                raise
            logger.warning("LLM extraction failed, using %s: %s", self.fallback.method, exc)
            return self.fallback.extract(text), self.fallback.method, self.fallback.model

    def _ask(self, text: str) -> list[Mention]:
        if not text.strip():
            return []
        content = self.endpoint.complete([{"role": "system", "content": PROMPT},
                                          {"role": "user", "content": text}])
        try:
            items = json.loads(FENCE.sub("", content.strip()))["entities"]
            return dedupe([m for m in (_mention(text, item) for item in items) if m])
        except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
            raise LLMUnavailable(f"unexpected answer from {self.url}: {exc}") from exc


def _mention(text: str, item) -> Mention | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    name = item["name"].strip()
    start = text.casefold().find(name.casefold()) if name else -1
    if start < 0 or len(name) > 255 or text[start:start + len(name)].casefold() != (
            name.casefold()):
        return None
    entity_type = entity_type_of(str(item.get("type", ""))) or "other"
    return Mention(text[start:start + len(name)], entity_type, 0.8, start, start + len(name))
