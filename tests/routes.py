"""Every operation the apps serve, read from the root urls (each app's urls, included by
name), so tests that cover "every route" cover the routes added later too."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.urls import URLPattern, URLResolver, get_resolver, resolve

UNDOCUMENTED = {"openapi"}  # the schema itself
IGNORED_METHODS = {"head", "options"}  # DRF adds HEAD at run time; OPTIONS is undocumented


def _methods(callback) -> set[str]:
    actions = getattr(callback, "actions", None)
    if actions is not None:  # a viewset route: its method → action map
        return set(actions) - IGNORED_METHODS
    view_class = callback.view_class
    return {m for m in view_class.http_method_names if hasattr(view_class, m)} - (
        IGNORED_METHODS | {"http_method_not_allowed"})


def _spelled(route: str) -> str:
    path = "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    path = path.replace("^", "").replace("/?$", "").replace("$", "")
    return path.replace("{pk}", "{id}")


def served_operations(prefix: str = "v1/") -> set[tuple[str, str]]:
    """(path, method) for every route the apps include under ``prefix``, in the documented
    spelling (``/v1/sessions/{id}``, ``/v1/projects/{slug}``)."""
    operations: set[tuple[str, str]] = set()
    for top in get_resolver().url_patterns:
        if isinstance(top, URLResolver) and str(top.pattern) == prefix:
            _collect(top.url_patterns, prefix, operations)
        elif (isinstance(top, URLPattern) and top.name not in UNDOCUMENTED
              and str(top.pattern).lstrip("^").startswith(prefix)):
            _collect([top], "", operations)
    return operations


def _collect(patterns, prefix: str, operations: set) -> None:
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^")
        if isinstance(pattern, URLResolver):
            _collect(pattern.url_patterns, route, operations)
        elif isinstance(pattern, URLPattern):
            operations |= {(_spelled(route), m) for m in _methods(pattern.callback)}


def operation_of(path: str) -> str:
    """The documented spelling of the route serving ``path`` (its query string aside), as
    ``served_operations`` spells it."""
    return _spelled(resolve(urlsplit(path).path).route)
