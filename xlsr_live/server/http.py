"""Plain HTTP routes next to the websocket endpoints: page, static files, /healthz, /metrics;
plus the handshake checks: shutdown, connection limit, admission control, bearer token."""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
from importlib import resources
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

from .metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


def response(status: int, body: bytes, content_type: str, extra: Optional[dict] = None) -> Response:
    """An HTTP response with the usual headers."""
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": "no-store", "Connection": "close"})
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, REASONS.get(status, "Error"), headers, body)


def text_response(status: int, text: str, extra: Optional[dict] = None) -> Response:
    """A text/plain response."""
    return response(status, text.encode(), "text/plain; charset=utf-8", extra)


def is_websocket(request) -> bool:
    """Whether the request asks for a websocket upgrade."""
    return "websocket" in request.headers.get("Upgrade", "").lower()


def request_token(request) -> Optional[str]:
    """Bearer token from the Authorization header or the `token` query parameter."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


def token_ok(expected: Optional[str], given: Optional[str]) -> bool:
    """Constant-time token check; no token configured means open."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def static_file(name: str) -> Optional[Response]:
    """A file of xlsr_live/server/static, or None (no directories, no traversal)."""
    if not name or "/" in name or name.startswith("."):
        return None
    resource = resources.files("xlsr_live.server").joinpath("static", name)
    if not resource.is_file():
        return None
    suffix = "." + name.rsplit(".", 1)[-1]
    kind = STATIC_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return response(200, resource.read_bytes(), kind)


class Router:
    """`process_request` for websockets.asyncio.server.serve, bound to one server's state."""

    def __init__(self, ctx, active_count, address_count=lambda address: 0):
        self.ctx = ctx
        self.active_count = active_count
        self.address_count = address_count  # open connections from one client address

    def __call__(self, connection, request) -> Optional[Response]:
        path = urlsplit(request.path).path
        if not is_websocket(request):
            return self._http(path)
        if self.ctx.shutdown.is_set():
            self.ctx.metrics.rejected_total += 1
            return text_response(503, "server shutting down\n")
        if self.active_count() >= self.ctx.options.max_connections:
            self.ctx.metrics.rejected_total += 1
            return text_response(503, "too many connections\n", {"Retry-After": "5"})
        if self._busy():
            self.ctx.metrics.rejected_total += 1
            self.ctx.metrics.rejected_busy_total += 1
            return text_response(503, "server busy: it is behind real time\n", {"Retry-After": "5"})
        per_address = self.ctx.options.max_connections_per_address
        peer = connection.remote_address
        if per_address and self.address_count(str(peer[0]) if peer else "") >= per_address:
            self.ctx.metrics.rejected_total += 1
            return text_response(429, "too many connections from this address\n", {"Retry-After": "5"})
        if not token_ok(self.ctx.options.token, request_token(request)):
            self.ctx.metrics.rejected_total += 1
            return text_response(401, "missing or wrong token\n", {"WWW-Authenticate": "Bearer"})
        return None

    def _busy(self) -> bool:
        """Admission control: windows wait longer than `busy_wait_ms` for the model on average."""
        limit = self.ctx.options.busy_wait_ms / 1000.0
        return limit > 0 and self.ctx.batcher.recent_wait > limit

    def _http(self, path: str) -> Response:
        if path == "/healthz":
            state = "shutting_down" if self.ctx.shutdown.is_set() else "ok"
            describe = getattr(self.ctx.engine, "describe", dict)
            body = json.dumps({"status": state, "active_sessions": self.active_count(), "busy": self._busy(),
                               "max_sessions": self.ctx.options.max_connections, "recognizer": describe()}) + "\n"
            return response(503 if state != "ok" else 200, body.encode(), "application/json")
        if path == "/metrics":
            return response(200, self.ctx.metrics.render().encode(), CONTENT_TYPE)
        if path == "/":
            path = "/index.html"
        if path.startswith("/static/"):
            path = path[len("/static"):]
        found = static_file(path.lstrip("/"))
        return found if found is not None else text_response(404, f"no such page: {path}\n")
