"""An OpenAI-compatible chat endpoint (``/v1/chat/completions``: OpenAI, Ollama, vLLM,
llama.cpp's server), for the optional LLM features. Off unless configured; every failure
(no answer within the timeout, an HTTP error, a body that is not a chat completion) is an
:class:`LLMUnavailable`, and the caller falls back to its offline method."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from .outbound import OutboundRefused, outbound_post

ANSWER_LIMIT = 4 << 20  # bytes of an account's endpoint's answer read at most


class LLMUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ChatEndpoint:
    url: str
    model: str
    api_key: str = ""
    timeout: float = 20.0
    # An account's own endpoint (not the operator's settings): called through
    # ``outbound_post``, its addresses checked on the connection that sends the request
    # (``allow_local`` as its setting says), no redirect followed, and no proxy.
    account_url: bool = False
    allow_local: bool = False

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
            if not self.api_key.isprintable():  # a header would refuse it, quoting it
                raise LLMUnavailable(f"{self.completions_url}: the API key holds a control "
                                     "character")
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode()
        try:
            body = json.loads(self._post(data, headers))
            content = body["choices"][0]["message"]["content"]
        except (urllib.error.URLError, http.client.HTTPException, OutboundRefused,
                TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError,
                RecursionError) as exc:  # RecursionError: JSON nested past Python's stack
            raise LLMUnavailable(f"{self.completions_url}: {exc}") from exc
        if not isinstance(content, str) or not content.strip():
            raise LLMUnavailable(f"{self.completions_url}: an empty answer")
        return content.strip()

    def _post(self, data: bytes, headers: dict) -> bytes:
        if not self.account_url:  # the operator's: urllib, so its proxy settings hold
            request = urllib.request.Request(self.completions_url, method="POST", data=data,
                                             headers=headers)
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        answer = outbound_post(self.completions_url, body=data, headers=headers,
                               timeout=self.timeout, name="base_url",
                               allow_local=self.allow_local, read_limit=ANSWER_LIMIT)
        if not 200 <= answer.status < 300:
            raise OSError(f"HTTP {answer.status} {answer.reason}")
        if answer.body_error is not None:
            raise OSError(f"the answer was cut short: {answer.body_error}")
        if answer.truncated:
            raise ValueError(f"an answer longer than {ANSWER_LIMIT} bytes")
        return answer.body


def chat_endpoint(prefix: str) -> ChatEndpoint | None:
    """The endpoint the settings ``{prefix}_URL``, ``_MODEL``, ``_API_KEY`` and ``_TIMEOUT``
    describe, or None when the URL or the model is not set."""
    url = getattr(settings, f"{prefix}_URL", "")
    model = getattr(settings, f"{prefix}_MODEL", "")
    if not url or not model:
        return None
    return ChatEndpoint(url=url, model=model, api_key=getattr(settings, f"{prefix}_API_KEY", ""),
                        timeout=float(getattr(settings, f"{prefix}_TIMEOUT", 20.0)))
