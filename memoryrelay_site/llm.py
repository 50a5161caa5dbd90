"""An OpenAI-compatible chat endpoint (``/v1/chat/completions``: OpenAI, Ollama, vLLM,
llama.cpp's server), for the optional LLM features. Off unless configured; every failure
(no answer within the timeout, an HTTP error, a body that is not a chat completion) is an
:class:`LLMUnavailable`, and the caller falls back to its offline method."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings


class LLMUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ChatEndpoint:
    url: str
    model: str
    api_key: str = ""
    timeout: float = 20.0

    @property
    def completions_url(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return f"{base}/chat/completions" if base.endswith("/v1") else (
            f"{base}/v1/chat/completions")

    def complete(self, messages: list[dict], *, max_tokens: int | None = None) -> str:
        """The assistant's answer to ``messages`` (temperature 0)."""
        payload = {"model": self.model, "temperature": 0, "messages": messages}
        if max_tokens:
            payload["max_tokens"] = max_tokens
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.completions_url, method="POST",
                                         data=json.dumps(payload).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
            content = body["choices"][0]["message"]["content"]
        except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError,
                IndexError, TypeError) as exc:
            raise LLMUnavailable(f"{self.completions_url}: {exc}") from exc
        if not isinstance(content, str) or not content.strip():
            raise LLMUnavailable(f"{self.completions_url}: an empty answer")
        return content.strip()


def chat_endpoint(prefix: str) -> ChatEndpoint | None:
    """The endpoint the settings ``{prefix}_URL``, ``_MODEL``, ``_API_KEY`` and ``_TIMEOUT``
    describe, or None when the URL or the model is not set."""
    url = getattr(settings, f"{prefix}_URL", "")
    model = getattr(settings, f"{prefix}_MODEL", "")
    if not url or not model:
        return None
    return ChatEndpoint(url=url, model=model, api_key=getattr(settings, f"{prefix}_API_KEY", ""),
                        timeout=float(getattr(settings, f"{prefix}_TIMEOUT", 20.0)))
