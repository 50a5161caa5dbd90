"""OpenAPI details drf-spectacular cannot infer: both key headers, the error body on
every operation, and the slash-less paths the API is served on."""

from __future__ import annotations

import threading

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.response import Response

ERROR_SCHEMA = {
    "type": "object",
    "required": ["type", "message", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "enum": [
            "validation_error", "not_found", "unauthorized", "forbidden",
            "method_not_allowed", "conflict", "payload_too_large", "rate_limit_exceeded",
            "internal_error", "service_unavailable",
        ]},
        "message": {"type": "string"},
        "detail": {"type": "string", "description": "Same as message"},
        "code": {"type": "integer", "description": "HTTP status"},
        "request_id": {"type": "string", "description": "Also sent as X-Request-ID"},
        "details": {
            "type": "array",
            "description": "Validation errors only: one entry per bad field",
            "items": {"type": "object", "required": ["field", "message"], "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
}
ERROR_STATUSES = {
    "400": "Malformed JSON", "401": "Missing, wrong, revoked or expired API key",
    "403": "The API key lacks the scope this call needs (read, write, delete or admin)",
    "404": "Not found (also another account's id, or a malformed id)",
    "413": "Request body too large", "422": "Validation failed",
    "429": "Rate limit of the API key exceeded; retry after Retry-After seconds",
    "503": "The database is unreachable, too slow, locked or read-only; retry after"
           " Retry-After seconds",
}

# Operations that answer 409 when a unique name or id is taken.
CONFLICTS = {
    ("/v1/sessions", "post"): "external_id already names a live session of the account",
    ("/v1/agents/{id}", "put"): "another agent of the account has that name",
    ("/v1/agents/{id}", "patch"): "another agent of the account has that name",
    ("/v1/projects", "post"): "slug already names a live project of the account",
    ("/v1/decisions/{id}/supersede", "post"): "the decision is already superseded (by an "
                                               "earlier or a concurrent supersede)",
}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "memoryrelay_site.auth.ApiKeyAuthentication"
    name = ["BearerAuth", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer mem_…"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]


def slashless_paths(endpoints, **kwargs):
    """Documents each route once, without the optional trailing slash."""
    seen, out = set(), []
    for path, regex, method, callback in endpoints:
        path = path.rstrip("/") or "/"
        if (path, method) not in seen:
            seen.add((path, method))
            out.append((path, regex, method, callback))
    return out


def error_responses(result, generator, request, public):
    """Adds the one error body to the components and to every operation's responses."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            operation["security"] = _either_key(operation.get("security", []))
            statuses = dict(ERROR_STATUSES)
            if path == "/v1/health":
                statuses = {"503": "Database unreachable (body: status unhealthy)"}
            if (path, method) in CONFLICTS:
                statuses["409"] = CONFLICTS[(path, method)]
            for status, description in statuses.items():
                operation["responses"].setdefault(
                    status, {"description": description,
                             "content": {"application/json": {"schema": ref}}}
                )
    return result


def _either_key(requirements: list[dict]) -> list[dict]:
    """One key header or the other, not both: one requirement object per scheme."""
    return [{name: scopes} for requirement in requirements for name, scopes in requirement.items()]


class SchemaView(SpectacularJSONAPIView):
    """``GET /v1/openapi.json``: built once per process and API version, since it is the
    same for every request and anyone may ask for it (building it takes about half a second
    of CPU: a loop of requests kept a worker busy)."""

    _built: dict = {}
    _lock = threading.Lock()

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        with self._lock:
            if version not in self._built:
                self._built[version] = super()._get_schema_response(request)
            built = self._built[version]
        return Response(data=built.data, headers={
            "Content-Disposition": built["Content-Disposition"]})
