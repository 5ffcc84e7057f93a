"""An HTTP/1.1 POST written on a plain socket, so a test controls what no client library lets it:
a ``Content-Length`` far larger than what it will send, or a chunked body of any size generated as
it goes, while it counts the bytes the server let it send before answering."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

BLOCK = 64 * 1024


@dataclass(frozen=True)
class StreamedPost:
    status: int
    sent_body_bytes: int  # what the socket accepted: the server read at most this much
    response: bytes


def post_streamed(
    url: str, *, headers: dict[str, str], head: bytes, total: int, chunked: bool, timeout: float = 120
) -> StreamedPost:
    """POST ``head`` then filler up to ``total`` bytes, sending only while the server takes it and
    stopping as soon as an answer arrives (or the server closes the connection)."""
    parts = urlsplit(url)
    connection = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    lines = [f"POST {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items()),
             "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"]  # fmt: skip
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    connection.setblocking(False)
    pending, pending_payload, sent, response = _frame(head, chunked), len(head), 0, b""
    block, finished = b"x" * BLOCK, False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not _complete(response):
            if sent >= total and not pending and chunked and not finished:
                pending, pending_payload, finished = b"0\r\n\r\n", 0, True  # the last chunk
            writable = [connection] if sent < total or pending else []
            readable, ready, _ = select.select([connection], writable, [], 1)
            if readable:
                data = connection.recv(BLOCK)
                if not data:
                    break
                response += data
                continue
            if ready:
                if not pending:
                    pending_payload = min(BLOCK, total - sent)
                    pending = _frame(block[:pending_payload], chunked)
                accepted = connection.send(pending)
                pending = pending[accepted:]
                if not pending:
                    sent += pending_payload
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        connection.close()
    status_line = response.split(b"\r\n", 1)[0].split()
    return StreamedPost(int(status_line[1]) if len(status_line) > 1 else 0, sent, response)


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def _complete(response: bytes) -> bool:
    head, separator, body = response.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False
