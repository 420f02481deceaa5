"""Uvicorn's HTTP protocol (httptools), with caps on a request's head: its size and the time it may take.

httptools has neither: five connections that each sent 40 MB of one header line and never finished it held
400 MB, for as long as they liked, and a complete 20 MB header was accepted. Here a head (request line and headers)
over max_header_bytes is answered 431, and one not complete within header_timeout of its first byte (or of the
connection, for a client that says nothing) is answered 408, and the connection closed either way. The limits are
read from the settings when a connection opens, so that every worker process applies the same ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.web.config import get_settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already answered."""


class BoundedHead(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_head = settings.max_header_bytes
        self.head_timeout = settings.header_timeout
        self.head_bytes = 0
        self.in_head = True  # reading a head: from the connection's start, and after each request's end
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)  # may count some body bytes too: only the check after parsing decides
            if self.head_timer is None:
                self._arm()
        super().data_received(data)
        if self.in_head and self.head_bytes > self.max_head and not self.transport.is_closing():
            self._refuse(431, "headers_too_large", f"the request's head is over {self.max_head} bytes")

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self._disarm()
        # A head that came whole in one read is measured here: request line and header lines, as sent.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
        if size > self.max_head:
            self._refuse(431, "headers_too_large", f"the request's head is over {self.max_head} bytes")
            raise _Refused  # httptools stops parsing; send_400_response below stays quiet
        super().on_headers_complete()
        # An ASGI extension: a response that gives up on a client that does not read resets the connection, so
        # the megabytes queued for it in the kernel go too (a plain close would keep them until it reads).
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions["unrolled.abort"] = self.transport.abort

    def send_400_response(self, msg: str) -> None:
        if not self.refused:
            super().send_400_response(msg)

    def on_message_complete(self) -> None:
        # Whatever comes next is the next request's head, timed from its first byte (idle: timeout_keep_alive).
        # Not on the response's completion: a 413 leaves before the rest of its body has been read.
        self.in_head = True
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self.head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _too_slow(self) -> None:
        self.head_timer = None
        if not self.in_head or self.transport.is_closing():
            return
        if self.head_bytes:
            self._refuse(408, "timeout", f"the request's head did not arrive within {self.head_timeout:g} s")
        else:
            self.transport.close()  # said nothing: nothing to answer

    def _refuse(self, status: int, error: str, message: str) -> None:
        self.refused = True
        self._disarm()
        body = orjson.dumps({"error": error, "message": message})
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        self.transport.close()
