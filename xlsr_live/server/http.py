"""Plain HTTP routes next to the websocket endpoints (Starlette): page, static files, /healthz
(readiness), /livez (liveness), /metrics, the OpenAI-compatible REST endpoints; plus the websocket handshake checks: shutdown,
connection limit, admission control, per-address limit, Origin, bearer token."""

from __future__ import annotations

import logging
import mimetypes
from importlib import resources
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from .auth import token_ok
from .metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}


SUBPROTOCOL_KEY = "openai-insecure-api-key."  # how browsers pass OpenAI's key to /v1/realtime


def request_token(headers, path: str) -> Optional[str]:
    """Bearer token from the Authorization header, the `token` query parameter, or (browsers, which
    cannot set headers on websockets) OpenAI's `openai-insecure-api-key.TOKEN` subprotocol."""
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for offered in ",".join(headers.get_all("Sec-WebSocket-Protocol")).split(","):
        if offered.strip().startswith(SUBPROTOCOL_KEY):
            return offered.strip()[len(SUBPROTOCOL_KEY):]
    values = parse_qs(urlsplit(path).query).get("token")
    return values[0] if values else None


def static_file(name: str) -> Optional[tuple[bytes, str]]:
    """(bytes, content type) of a file of xlsr_live/server/static, or None (no directories, no traversal)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    resource = resources.files("xlsr_live.server").joinpath("static", name)
    if not resource.is_file():
        return None
    suffix = "." + name.rsplit(".", 1)[-1]
    kind = STATIC_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return resource.read_bytes(), kind


def is_busy(ctx) -> bool:
    """Admission control: windows wait longer than `busy_wait_ms` for the model on average."""
    limit = ctx.options.busy_wait_ms / 1000.0
    return limit > 0 and ctx.batcher.recent_wait > limit


def readiness(ctx, active: int, busy: bool) -> str:
    """'ok', or why new sessions are refused now: 'shutting_down', 'busy' or 'full'."""
    if ctx.shutdown.is_set():
        return "shutting_down"
    if busy:
        return "busy"
    return "full" if active >= ctx.options.max_connections else "ok"


def handshake_refusal(ctx, request, active: int, from_address: int) -> Optional[tuple[int, str, dict]]:
    """(status, text, headers) refusing a websocket handshake, or None to accept it."""
    options, metrics = ctx.options, ctx.metrics
    refusal = None
    origin = request.headers.get("Origin")
    if ctx.shutdown.is_set():
        refusal = (503, "server shutting down\n", {"Retry-After": "1"})
    elif active >= options.max_connections:
        refusal = (503, "too many connections\n", {"Retry-After": "5"})
    elif is_busy(ctx):
        metrics.rejected_busy_total += 1
        refusal = (503, "server busy: it is behind real time\n", {"Retry-After": "5"})
    elif options.max_connections_per_address and from_address >= options.max_connections_per_address:
        refusal = (429, "too many connections from this address\n", {"Retry-After": "5"})
    elif options.allowed_origins and origin is not None and origin not in options.allowed_origins:
        refusal = (403, f"origin {origin[:100]} is not allowed\n", {})
    elif not token_ok(options.token, request_token(request.headers, request.path)):
        refusal = (401, "missing or wrong token\n", {"WWW-Authenticate": "Bearer"})
    if refusal is not None:
        metrics.rejected_total += 1
    return refusal


def http_app(ctx, active_count: Callable[[], int]):
    """The Starlette application for every plain HTTP request of one server."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from .openai_rest import OpenAIRoutes

    async def healthz(request):
        """Readiness: 503 while draining, behind real time or at max connections (a balancer skips it)."""
        active, busy = active_count(), is_busy(ctx)
        state = readiness(ctx, active, busy)
        describe = getattr(ctx.engine, "describe", dict)  # start-up choices (xlsr_live.defaults)
        body = {"status": state, "active_sessions": active, "busy": busy,
                "max_sessions": ctx.options.max_connections, "recognizer": describe()}
        return JSONResponse(body, status_code=200 if state == "ok" else 503, headers=NO_STORE)

    async def livez(request):
        """Liveness: the event loop answers (busy or draining servers are alive)."""
        return JSONResponse({"status": "alive"}, headers=NO_STORE)

    async def metrics(request):
        return Response(ctx.metrics.render(), media_type=None, headers={**NO_STORE, "Content-Type": CONTENT_TYPE})

    async def page(request):
        path = request.url.path
        if path == "/":
            path = "/index.html"
        if path.startswith("/static/"):
            path = path[len("/static"):]
        found = static_file(path.lstrip("/"))
        if found is None:
            return PlainTextResponse(f"no such page: {path[:200]}\n", status_code=404, headers=NO_STORE)
        body, kind = found
        return Response(body, headers={**NO_STORE, "Content-Type": kind})

    openai = OpenAIRoutes(ctx)
    routes = [Route("/healthz", healthz), Route("/livez", livez), Route("/metrics", metrics), *openai.routes(),
              Route("/{path:path}", page)]
    return Starlette(routes=routes)
