"""Requests to URLs an account gave (memoryrelay_site.outbound): one deadline over the
whole exchange, whatever the receiver does, and addresses checked as they are connected to."""

from __future__ import annotations

import socket
import time

import pytest

from memoryrelay_site.outbound import OutboundRefused, outbound_post


def post(url, timeout=1.0, read_limit=1024):
    return outbound_post(url, body=b"{}", headers={}, timeout=timeout, name="url",
                         allow_local=True, read_limit=read_limit)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
])
def test_a_body_trickled_on_a_closing_connection_ends_at_the_deadline(raw_http_server, answer):
    """http.client lets go of its socket once an answer says the connection closes: the
    deadline used to find nothing to cut, and each byte in time kept the read going."""
    raw_http_server.answer = answer
    raw_http_server.trickle, raw_http_server.pause = b"x" * 40, 0.25  # 10 s in all
    started = time.monotonic()
    reply = post(raw_http_server.url, timeout=1.0)
    assert time.monotonic() - started < 3
    assert reply.status == 200 and isinstance(reply.body_error, TimeoutError)


def test_a_name_server_slower_than_the_deadline_ends_the_exchange(monkeypatch):
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host == "slow.example.com":
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post("http://slow.example.com/hook", timeout=0.5)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial", "IncompleteRead"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
     "ValueError|IncompleteRead"),
])
def test_a_body_cut_short_or_badly_framed_is_said_so_not_raised(raw_http_server, answer, error):
    raw_http_server.answer = answer
    reply = post(raw_http_server.url)
    assert reply.status == 200
    # (A reset instead of an orderly close, when the receiver closes with our request
    # unread, says the same.)
    assert type(reply.body_error).__name__ in [*error.split("|"), "ConnectionResetError"]


def test_a_whole_body_and_one_past_the_limit_are_told_apart(raw_http_server):
    raw_http_server.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    reply = post(raw_http_server.url)
    assert (reply.body, reply.body_error, reply.truncated) == (b"hello", None, False)
    reply = post(raw_http_server.url, read_limit=3)
    assert (reply.body, reply.body_error, reply.truncated) == (b"hel", None, True)


@pytest.mark.parametrize("address", [
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "::a00:1",  # IPv4-compatible 10.0.0.1
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT) 127.0.0.1
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
    "fec0::1",  # site-local
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
])
def test_ipv6_addresses_carrying_a_private_ipv4_one_are_refused(address, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))])
    with pytest.raises(OutboundRefused):
        outbound_post("https://hooks.example.com/x", body=b"{}", headers={}, timeout=1,
                      name="url", allow_local=False, read_limit=10)
    with pytest.raises(OutboundRefused):
        outbound_post(f"https://[{address}]/x", body=b"{}", headers={}, timeout=1,
                      name="url", allow_local=False, read_limit=10)


def test_a_host_name_no_name_server_could_resolve_is_refused_not_retried():
    """A label over 63 characters: the lookup raised UnicodeError in its thread, which died,
    and the call said "did not resolve within the timeout", to be retried until given up."""
    from memoryrelay_site.outbound import outbound_refusal

    url = "https://" + "a" * 64 + ".example.com/hook"
    assert "not a valid URL" in outbound_refusal(url, name="url", allow_local=False)
    started = time.monotonic()
    with pytest.raises(OutboundRefused, match="not a valid host name"):
        post(url, timeout=2)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("informational", [b"103 Early Hints\r\nLink: </s.css>; rel=preload",
                                           b"102 Processing"])
def test_an_informational_answer_before_the_final_one_is_skipped(raw_http_server, informational):
    """A receiver sending 103 Early Hints had its webhook retried until it failed."""
    raw_http_server.answer = (b"HTTP/1.1 " + informational + b"\r\n\r\n"
                              b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    reply = post(raw_http_server.url)
    assert (reply.status, reply.body_error) == (204, None)
