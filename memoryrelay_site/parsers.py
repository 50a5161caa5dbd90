"""The one JSON parser of the API: every request body is checked here once, so no crafted
document can reach a serializer, the database or the response renderer and crash it.

- Malformed JSON (bad syntax, bytes that are not UTF-8, ``NaN``) is a **400**, as before:
  the body as a whole is not JSON. A body labelled with another charset than UTF-8, or
  compressed (``Content-Encoding``), is a **415**.
- A well-formed document the server cannot hold is a **422 naming the field** (the dotted
  path, ``memories.3.content``; ``body`` for the document itself), because the client can
  fix that one value: nesting deeper than :data:`MAX_DEPTH` levels (a stack-eating
  document is refused before anything walks it recursively), a lone surrogate such as
  ``"\\udfff"`` in a key or a value (valid JSON syntax, but not text: it cannot be encoded
  as UTF-8 to be stored or echoed), an integer outside 64 bits or a number out of float
  range (no database column or float field takes it), a document that is ``null``.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.utils.json import strict_constant

from .errors import Invalid

# Deep enough for any real body (a batch item's metadata at its own limit sits at depth 35),
# shallow enough that nothing recursive downstream comes near Python's recursion limit.
MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # integers must fit a signed 64-bit column
_SURROGATE = re.compile("[\ud800-\udfff]")
# The tokens that change nesting, with strings skipped whole (they may hold brackets).
_NESTING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        _refuse_encoded(context.get("request"))
        _refuse_charset(context.get("encoding") or "utf-8")
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
            data = json.loads(text, parse_constant=strict_constant)
        except RecursionError:
            raise too_deep(_too_deep_field(text)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if data is None:  # read as no body at all before: `null` created a key named ""
            raise Invalid("Invalid data. Expected a dictionary, but got null.", field="body")
        check_document(data)
        return data


def _refuse_charset(encoding: str) -> None:
    """JSON is UTF-8 (RFC 8259); ASCII, a part of it, is read as UTF-8. Any other charset
    is a 415: the client's label picked the codec, and some cost seconds of CPU a megabyte
    (``punycode``) or read text otherwise than it was meant (``utf-7``)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = encoding
    if name not in ("utf-8", "ascii"):
        raise UnsupportedMediaType(
            f"application/json; charset={encoding}",
            detail=f"Unsupported charset {encoding[:40]!r}: send JSON as UTF-8")


def _refuse_encoded(request) -> None:
    """A compressed body (``Content-Encoding: gzip``) was read as JSON text and failed as
    bytes that are not UTF-8, or a body labelled ``br`` was taken as it was: neither is
    supported, so either is a 415 that says so."""
    coding = (getattr(request, "META", {}).get("HTTP_CONTENT_ENCODING") or "").strip()
    if coding and coding.lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {coding[:40]}",
            detail=f"Content-Encoding {coding[:40]!r} is not supported: send the body "
                   "uncompressed")


def too_deep(field: str, limit: int = MAX_DEPTH) -> Invalid:
    return Invalid(f"{field}: nested deeper than {limit} levels", field=field)


def check_document(data: Any) -> None:
    """Walks the parsed document without recursion; raises a 422 on the first value the
    server cannot hold. Scalars are checked where they are found and a container is queued
    with a link to its parent, so the walk holds a few bytes per container, not a copy of
    each element's path (a 1 MB body of nested lists took 330 MB)."""
    stack: list[tuple[Any, tuple | None, int]] = [(data, None, 1)]
    while stack:
        value, node, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise too_deep(field_name(_path(node)[:1]))
            items = value.items()
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise too_deep(field_name(_path(node)[:1]))
            items = enumerate(value)
        else:
            _check_scalar(value, node)
            continue
        for key, item in items:
            if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                raise _invalid(_path((node, key)), "keys must be text without lone surrogates")
            if isinstance(item, (dict, list)):
                stack.append((item, (node, key), depth + 1))
            else:
                _check_scalar(item, (node, key))


def _path(node: tuple | None) -> tuple:
    """The keys from the document's root to ``node`` (a chain of (parent, key) links)."""
    keys = []
    while node is not None:
        node, key = node
        keys.append(key)
    return tuple(reversed(keys))


def _check_scalar(value: Any, node: tuple | None) -> None:
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            raise _invalid(_path(node), "must be text without lone surrogates (such as "
                           "\\udfff)")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _invalid(_path(node), "integer out of range (at most 64 bits)")
    elif isinstance(value, float) and not math.isfinite(value):
        raise _invalid(_path(node), "number out of range")


def depth_of(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, ``{}`` is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def field_name(path: tuple) -> str:
    """``("memories", 3, "content")`` → ``memories.3.content``; ``()`` → ``body``. A key
    that is not text is shown escaped, so the error body itself can always be encoded."""
    parts = [str(p).encode("utf-8", "backslashreplace").decode() for p in path]
    return ".".join(parts) or "body"


def _invalid(path: tuple, message: str) -> Invalid:
    field = field_name(path)
    return Invalid(f"{field}: {message}", field=field)


def _too_deep_field(text: str) -> str:
    """The top-level key whose value nests too deep (``body`` when the document is an
    array, or nests too deep itself). Reads tokens only up to the too-deep point."""
    depth, key, last_string = 0, None, None
    in_object = text.lstrip().startswith("{")
    for match in _NESTING_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                break
        elif token in "]}":
            depth -= 1
        elif token == ":" and depth == 1 and in_object:
            key = last_string
        elif token.startswith('"'):
            last_string = token
    try:
        return field_name((json.loads(key),)) if key and depth > 1 else "body"
    except ValueError:
        return "body"
