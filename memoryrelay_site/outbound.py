"""Where the server may send requests an account asked for (webhooks, an account's own LLM
endpoint): only ``https``, and never to a host that is or resolves to a loopback, private,
link-local or otherwise non-public address, unless the feature's setting allows local
addresses (local setups, tests; it also allows ``http``)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def outbound_refusal(url: str, *, name: str, allow_local: bool, resolve: bool,
                     raise_unresolved: bool = False) -> str | None:
    """Why ``url`` (the field ``name``) may not be called, or None. ``resolve``: look host
    names up too (at call time); otherwise only literal addresses are checked. A host that
    does not resolve is a refusal, or with ``raise_unresolved`` the lookup's OSError (a
    caller that retries: name servers fail for a while)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port out of 0-65535 or not a number raises here)
    except ValueError:
        return f"{name} is not a valid URL (its host or port)"
    allowed = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        return f"{name} must be an https URL"
    if allow_local:
        return None
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return f"{name} may not point to this machine"
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            if raise_unresolved:
                raise
            return f"{name} host does not resolve: {exc}"
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            return f"{name} may not point to a loopback, private or link-local address"
    return None
