"""Request bounds of the scoring service, and the ASGI middleware that enforces the body size.

The body is counted as it arrives, so an upload past the limit is refused with 413 before it is held
in memory, whether or not the client sent a Content-Length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["ServeLimits", "BodySizeLimit", "RequestTooLarge"]


@dataclass(frozen=True)
class ServeLimits:
    """What one request may carry.

    Attributes:
        max_request_bytes: the whole request body (all files of a multipart upload together).
        max_clip_s: the longest clip scored (checked from the header, before decoding).
        max_files: clips per request.
    """

    max_request_bytes: int = 64 << 20
    max_clip_s: float = 120.0
    max_files: int = 16


# A body declared over the limit is still read (and dropped) up to this many times the limit before the 413:
# closing a socket with unread data resets it, and the client then sees a broken connection instead of the
# answer (measured in benchmarks/service_load.py at 64 clients). Larger bodies get the 413 and a closed socket.
_DRAIN_FACTOR = 8


async def _drain(receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class RequestTooLarge(Exception):
    """Raised while the body is read past the limit; the app answers it with 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the {limit}-byte limit")
        self.limit = limit


class BodySizeLimit:
    """Pure ASGI middleware: answer 413 to a request whose body exceeds `max_bytes`.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the limit.
        on_refused: called with no argument for each refused request (for metrics).
    """

    def __init__(self, app, *, max_bytes: int, on_refused=None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= _DRAIN_FACTOR * self.max_bytes:
                await _drain(receive)
            await self._refuse(send, int(declared))
            return
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestTooLarge:
            if started:  # too late to answer; the connection is dropped
                raise
            await self._refuse(send, received)

    async def _refuse(self, send, size: int) -> None:
        if self.on_refused is not None:
            self.on_refused()
        body = json.dumps({
            "detail": f"request body of {size} bytes or more exceeds the {self.max_bytes}-byte limit",
            "kind": "too_large", "problems": [],
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
