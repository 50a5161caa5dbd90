"""The one error body of the API, built here for every layer.

Services raise :class:`ServiceError` subclasses (they never import DRF); the DRF
exception handler and the Django middleware both turn errors into the same JSON body::

    {"type": "not_found", "message": "...", "detail": "...", "code": 404, "request_id": "req_..."}
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from . import db

logger = logging.getLogger("memoryrelay.errors")

STATUS_TYPES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "validation_error",
    409: "conflict",
    413: "payload_too_large",
    415: "validation_error",
    422: "validation_error",
    429: "rate_limit_exceeded",
    431: "payload_too_large",
    503: "service_unavailable",
}
DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    500: "Internal server error",
    503: "Service unavailable",
}


class ServiceError(Exception):
    """A domain error with an API type and HTTP status."""

    status = 400
    type = "validation_error"
    retry_after: int | None = None  # seconds, sent as Retry-After (a 503 that will pass)

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404
    type = "not_found"


class Invalid(ServiceError):
    """A 422 about one field of the request."""

    status = 422
    type = "validation_error"


class Conflict(ServiceError):
    status = 409
    type = "conflict"


class Unauthorized(ServiceError):
    """The calling key was revoked while its request ran."""

    status = 401
    type = "unauthorized"


def status_type(status: int) -> str:
    return STATUS_TYPES.get(status, "internal_error" if status >= 500 else "validation_error")


def error_body(
    status: int, message: str, request_id: str | None, details: list[dict] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": status_type(status),
        "message": message,
        "detail": message,
        "code": status,
        "request_id": request_id,
    }
    if details is not None:
        body["details"] = details
    return body


def error_json_response(request, status: int, message: str | None = None) -> JsonResponse:
    message = message or DEFAULT_MESSAGES.get(status, "Error")
    body = error_body(status, message, getattr(request, "request_id", None))
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = "Bearer"
    if status == 503:
        response["Retry-After"] = str(settings.MEMORYRELAY_DB_RETRY_AFTER)
    return response


def exception_response(request, exc: BaseException) -> JsonResponse:
    """The answer to an exception no view handled, logged once: a database that cannot
    serve now is a 503 in one line; anything else is a bug, a 500 with its traceback."""
    if isinstance(exc, SuspiciousOperation):  # the client's doing (a 400), as Django has it
        logging.getLogger(f"django.security.{type(exc).__name__}").warning(
            "400 %s %s: %s [%s]", request.method, request.path, exc,
            getattr(request, "request_id", None))
        return error_json_response(request, 400, (
            "Bad request: too many query or form parameters (at most "
            f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})" if isinstance(exc, TooManyFieldsSent)
            else "Bad request"))
    reason = db.unavailable_reason(exc)
    if reason is None:
        logger.error("500 %s %s [%s]", request.method, request.path,
                     getattr(request, "request_id", None), exc_info=exc)
        return error_json_response(request, 500)
    log_unavailable(request, exc, reason)
    db.discard_connection(reason)
    return error_json_response(request, 503, db.MESSAGES[reason])


def log_unavailable(request, exc: BaseException, reason: str) -> None:
    """One line per request, even when a second error follows the first (a failed query,
    then the rollback of the request's transaction on the same dead connection)."""
    http_request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    if getattr(http_request, "_database_trouble_logged", False):
        return
    http_request._database_trouble_logged = True
    logger.warning("503 %s %s: database %s (%s: %s) [%s]", request.method, request.path,
                   reason, type(exc.__cause__ or exc).__name__, db.summary(exc),
                   getattr(request, "request_id", None))


def flatten_validation(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error structure into ``[{field, message}]``."""
    if isinstance(data, dict):
        out: list[dict[str, str]] = []
        for key, value in data.items():
            name = prefix if key in ("non_field_errors", "__all__") else _join(prefix, key)
            out.extend(flatten_validation(value, name))
        return out
    if isinstance(data, list):
        if all(not isinstance(item, (dict, list)) for item in data):
            return [{"field": prefix or "body", "message": str(item)} for item in data]
        out = []
        for index, item in enumerate(data):
            out.extend(flatten_validation(item, _join(prefix, str(index))))
        return out
    return [{"field": prefix or "body", "message": str(data)}]


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return drf_exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        return _PayloadTooLarge()
    return exc


class _PayloadTooLarge(drf_exceptions.APIException):
    status_code = 413
    default_detail = DEFAULT_MESSAGES[413]


class _DatabaseUnavailable(drf_exceptions.APIException):
    status_code = 503
    default_detail = DEFAULT_MESSAGES[503]


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler runs first (so the transaction is rolled back), then the body is reshaped."""
    # Imported here: rest_framework.views loads the API settings, whose classes (parsers,
    # authentication) import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    request = context.get("request")
    reason = db.unavailable_reason(exc)
    if reason is not None:
        log_unavailable(request, exc, reason)
        db.discard_connection(reason)
        exc = _DatabaseUnavailable(db.MESSAGES[reason])
    exc = _translate(exc)
    request_id = getattr(request, "request_id", None)
    if isinstance(exc, ServiceError):
        drf_exc = drf_exceptions.APIException(exc.message)
        drf_exc.status_code = exc.status
        response = drf_exception_handler(drf_exc, context)
        details = [{"field": exc.field, "message": exc.message}] if exc.field else None
        if exc.status == 422 and details is None:
            details = [{"field": "body", "message": exc.message}]
        response.data = error_body(exc.status, exc.message, request_id, details)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        details = flatten_validation(exc.detail)
        response.status_code = 422
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        response.data = error_body(422, f"Validation failed: {summary}", request_id, details)
        return response
    message = _message_of(exc, response.status_code)
    response.data = error_body(response.status_code, message, request_id)
    if response.status_code == 401:
        response["WWW-Authenticate"] = "Bearer"
    if response.status_code == 503:
        response["Retry-After"] = str(settings.MEMORYRELAY_DB_RETRY_AFTER)
    return response


def _message_of(exc: Exception, status: int) -> str:
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str) and detail:
        return detail
    return DEFAULT_MESSAGES.get(status, str(exc) or "Error")
