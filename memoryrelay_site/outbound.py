"""Requests the server sends to URLs an account gave it (webhooks, an account's own LLM
endpoint): only ``https``, and never to a host that is or resolves to a loopback, private,
link-local or otherwise non-public address, unless the feature's setting allows local
addresses (local setups, tests; it also allows ``http``).

A URL is checked twice: when it is given (:func:`outbound_refusal`: its scheme and a literal
address), and when it is called (:func:`outbound_post`): the host name is looked up once,
every address it gives is checked, and the connection is made to those same addresses. A
name looked up again between a check and the connection could answer otherwise (a name
server that rebinds it to 127.0.0.1 once checked), so nothing here looks a name up twice.
Redirects are never followed (their target was never checked), and the whole exchange has
one deadline, so a receiver cannot hold a worker by answering a byte at a time."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .deadlines import within


class OutboundRefused(Exception):
    """The URL may not be called: its scheme, or an address its host is or resolves to."""


def outbound_refusal(url: str, *, name: str, allow_local: bool) -> str | None:
    """Why ``url`` (the field ``name``) may not be called, or None, from the URL alone: its
    scheme, its port, and its host when that is an address or ``localhost``. Host names are
    looked up, and their addresses checked, when the URL is called."""
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
    host = parts.hostname.lower()
    try:
        host.encode("idna")  # a label over 63 characters, or empty: no name can resolve it
    except UnicodeError:
        return f"{name} is not a valid URL (its host)"
    if host == "localhost" or host.endswith(".localhost"):
        return f"{name} may not point to this machine"
    try:
        return _address_refusal(ipaddress.ip_address(host), name)
    except ValueError:
        return None  # a name: checked when called


# IPv6 addresses that carry an IPv4 one a gateway reaches: NAT64 (DNS64 answers a v4-only
# name with one) and the IPv4-compatible form, each judged by the IPv4 address it carries;
# 6to4 (2002::/16) by the one it routes to. Local-use NAT64, Teredo and the old site-local
# range are refused whole.
# NAT64, IPv4-compatible and IPv4-translated (SIIT, ::ffff:0:a.b.c.d) addresses: judged by
# the IPv4 address they carry.
_CARRY_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"),
               ipaddress.ip_network("::ffff:0:0:0/96"))
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _address_refusal(address, name: str) -> str | None:
    refusal = f"{name} may not point to a loopback, private or link-local address"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address.teredo is not None or address in _NAT64_LOCAL or address.is_site_local:
            return refusal
        elif any(address in network for network in _CARRY_IPV4):
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if not address.is_global or address.is_multicast:
        return refusal
    return None


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes
    body_error: Exception | None  # the body did not arrive whole (cut off, malformed)
    truncated: bool  # the body is longer than the caller's limit


PATH_SAFE = "/%:@!$&'()*+,;=~"  # kept as they are; anything else (a space, "é") is escaped


def outbound_post(url: str, *, body: bytes, headers: dict, timeout: float, name: str,
                  allow_local: bool, read_limit: int) -> Answer:
    """POSTs ``body`` to ``url`` and answers the status and at most ``read_limit`` bytes of
    the body. Raises :class:`OutboundRefused` for a URL the policy refuses (checked again
    here, on the addresses really connected to), ``OSError`` when no answer came (a name
    that does not resolve for now, no connection, the deadline: ``timeout`` seconds for the
    whole exchange) and ``http.client.HTTPException`` for an answer that is not HTTP."""
    refusal = outbound_refusal(url, name=name, allow_local=allow_local)
    if refusal:
        raise OutboundRefused(refusal)
    parts = urlsplit(url)
    connection = _Connection(parts.scheme, parts.hostname, parts.port, timeout,
                             allow_local=allow_local, name=name)
    watchdog = threading.Timer(timeout, connection.cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        target = quote(parts.path or "/", safe=PATH_SAFE) + (
            f"?{quote(parts.query, safe=PATH_SAFE + '?')}" if parts.query else "")
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        if connection.was_cut.is_set():  # the headers may have been cut short
            raise TimeoutError(f"no complete answer within {timeout:g} s")
        content, error = b"", None
        try:
            content = response.read(read_limit + 1)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a
            error = exc  # chunk size that is not a number
        complete = len(content) > read_limit or not response.length
        if connection.was_cut.is_set() and len(content) <= read_limit:  # whatever the cut
            error = TimeoutError(f"the body did not arrive within {timeout:g} s")  # raised
        elif error is None and not complete:  # the connection closed before its length
            error = http.client.IncompleteRead(content, response.length)
        return Answer(response.status, response.reason, content[:read_limit], error,
                      len(content) > read_limit)
    finally:
        watchdog.cancel()
        connection.close()


def _lookup(host: str, port: int, seconds: float) -> list:
    """``getaddrinfo`` within ``seconds``: a name server that answers slowly (or never)
    cannot hold the exchange past its deadline (the lookup goes on in its thread)."""
    try:
        return within(seconds, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                      late=TimeoutError(f"{host} did not resolve within the timeout"),
                      name="outbound-lookup")
    except UnicodeError:  # a host IDNA cannot encode
        raise OutboundRefused(f"{host} is not a valid host name") from None


class _Response(http.client.HTTPResponse):
    """http.client skips a ``100 Continue`` before the answer; other informational answers
    (``103 Early Hints``, ``102 Processing``) are skipped too, so the status read is the
    final one."""

    def _read_status(self):
        while True:
            version, status, reason = super()._read_status()
            if not 100 < status < 200 or status == 101:
                return version, status, reason
            http.client._read_headers(self.fp)  # its headers; the final answer follows


class _Connection(http.client.HTTPSConnection):
    """One exchange with a deadline over all of it: the name looked up once and its
    addresses checked, each address tried, the TLS handshake and every read get only the
    time left, and :meth:`cut` (the watchdog, at the deadline) shuts down whichever socket
    is open, ending a blocked read at once."""

    response_class = _Response

    def __init__(self, scheme: str, host: str, port: int | None, timeout: float, *,
                 allow_local: bool, name: str):
        super().__init__(host, port or (443 if scheme == "https" else 80), timeout=timeout)
        self.tls = scheme == "https"
        self.allow_local, self.field = allow_local, name
        self.deadline = time.monotonic() + timeout
        self.was_cut = threading.Event()

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self.was_cut.is_set():
            raise TimeoutError("the receiver took longer than the timeout")
        return remaining

    def connect(self) -> None:
        infos = _lookup(self.host, self.port, self.left())
        if not self.allow_local:
            for *_, address in infos:
                refusal = _address_refusal(ipaddress.ip_address(address[0]), self.field)
                if refusal:
                    raise OutboundRefused(refusal)
        self.left()
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            self.sock = sock
            try:
                sock.settimeout(self.left())
                sock.connect(address)
                break
            except OSError as exc:
                sock.close()
                self.sock, error = None, exc
                if isinstance(exc, TimeoutError) and self.was_cut.is_set():
                    raise
        else:
            raise error or OSError(f"{self.host} has no address")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            wrapped = self._context.wrap_socket(sock, server_hostname=self.host,
                                                do_handshake_on_connect=False)
            self.sock = wrapped
            wrapped.settimeout(self.left())
            wrapped.do_handshake()
        self.sock.settimeout(self.left())
        # http.client lets go of ``self.sock`` once an answer says it closes the connection
        # (HTTP/1.0, ``Connection: close``, no length), while its body is still read off
        # the same socket: :meth:`cut` must find it all the same.
        self.open_socket = self.sock

    def cut(self) -> None:
        self.was_cut.set()
        sock = self.sock or getattr(self, "open_socket", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
