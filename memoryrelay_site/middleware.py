"""Request ids, body-size limits, the error body for everything outside DRF, and no cache
keeping the API's answers."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from .errors import error_json_response, exception_response

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_HTML_PREFIXES = ("/admin/", "/docs")
_API_PREFIXES = ("/v1/", "/v2/")


class RequestIdMiddleware:
    """Gives every request an id (the client's ``X-Request-ID`` when sane) and echoes it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _CLIENT_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if request.path.startswith(_API_PREFIXES):
            # An account's data, chosen by the key a header carries: no cache keeps it, and
            # one that does tells keys apart (X-API-Key is not Authorization, which shared
            # caches already never store).
            if "Cache-Control" not in response:
                response["Cache-Control"] = "no-store"
            patch_vary_headers(response, ("Authorization", "X-API-Key"))
        return response


class ApiErrorMiddleware:
    """Oversized bodies are 413; Django's own errors and crashes get the JSON error body:
    a database that cannot serve is a 503 with Retry-After, anything else a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _declared_length(request) > settings.MEMORYRELAY_MAX_BODY_BYTES:
            return error_json_response(request, 413)
        response = self.get_response(request)
        if self._needs_envelope(request, response):
            return error_json_response(request, response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path.startswith(_HTML_PREFIXES):
            return None
        return exception_response(request, exception)

    @staticmethod
    def _needs_envelope(request: HttpRequest, response: HttpResponse) -> bool:
        if response.status_code < 400 or request.path.startswith(_HTML_PREFIXES):
            return False
        return not response.get("Content-Type", "").startswith("application/json")


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
