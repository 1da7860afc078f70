"""What every slmtier HTTP service shares with the OpenAI API: errors as `{"error": {...}}` with OpenAI's
status codes (a malformed request is a 400, never a 422 or a 500), a request body bounded before it is read,
an optional bearer key on every route but /health, and read deadlines: a connection that does not send its
request's headers, or its body, within `read_timeout_s` is closed (408), so slow clients cannot hold
connections open forever (slow loris)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def error_response(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def install_api_basics(
    app: FastAPI, *, api_key: str | None, max_body_bytes: int, read_timeout_s: float = 10.0, open_paths=("/health",)
) -> None:
    """Error handlers, the body limit and deadline, and the key check, on `app`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError):
        return error_response(err.status, err.message, err.kind, err.code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException):  # unknown routes, wrong methods
        response = error_response(err.status_code, str(err.detail))
        response.headers.update(getattr(err, "headers", None) or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError):  # OpenAI answers 400, not 422
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in err.errors())
        return error_response(400, problems)

    app.add_middleware(RequestGuard, api_key=api_key, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s,
                       open_paths=frozenset(open_paths))  # fmt: skip


class RequestGuard:
    """ASGI middleware (plain, not Starlette's BaseHTTPMiddleware, which costs a task and a copy per request):
    the key check, then a POST's declared size, then its body read whole within the deadline and handed on.

    Requests declare their size and stay under `max_body_bytes`: a huge or endless body is refused before it
    is read (413 / 411), so one client cannot exhaust the server's memory. A chunked body (which declares no
    size) is refused too, whatever Content-Length claims beside it. A body that does not arrive within
    `read_timeout_s` is a 408 and the connection is closed."""

    def __init__(self, app, *, api_key: str | None, max_body_bytes: int, read_timeout_s: float, open_paths):
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes
        self.read_timeout_s, self.open_paths = read_timeout_s, open_paths
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # ASGI header names are lower-case bytes
        if self.expected and scope["path"] not in self.open_paths:
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                return await error_response(401, "invalid or missing API key", code="invalid_api_key")(
                    scope, receive, send
                )
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = headers.get(b"content-length", b"").decode("latin-1")
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            refusal = error_response(411, "a chunked request body is not accepted: send Content-Length")
        elif not length.isdigit():
            refusal = error_response(411, "a Content-Length header is required")
        elif int(length) > self.max_body_bytes:
            refusal = error_response(
                413, f"request body of {int(length):,} bytes exceeds this server's limit {self.max_body_bytes:,}"
            )
        else:
            refusal = None
        if refusal is not None:
            return await refusal(scope, receive, send)
        try:
            body = await asyncio.wait_for(read_body(receive), self.read_timeout_s)
        except asyncio.TimeoutError:
            late = error_response(408, f"the request body did not arrive within {self.read_timeout_s:g} s")
            late.headers["connection"] = "close"
            return await late(scope, receive, send)
        if body is None:  # the client left while sending it
            return None
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only the disconnect can come

        return await self.app(scope, replay, send)


async def read_body(receive) -> bytes | None:
    """The whole request body, or None when the client disconnects first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def run_server(app: FastAPI, *, host: str, port: int, read_timeout_s: float) -> None:
    import uvicorn

    uvicorn.Server(server_config(app, host=host, port=port, read_timeout_s=read_timeout_s)).run()


def server_config(app: FastAPI, *, host: str, port: int, read_timeout_s: float, graceful_shutdown_s: int = 10):
    """uvicorn's settings for `app`, with the header deadline below; on SIGTERM uvicorn stops accepting, and
    requests in flight get `graceful_shutdown_s` to finish before they are cancelled."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=header_deadline(read_timeout_s),
                          timeout_graceful_shutdown=graceful_shutdown_s)  # fmt: skip


def header_deadline(read_timeout_s: float):
    """uvicorn's HTTP protocol (httptools' parser when installed, else h11), closing a connection that has not
    sent a whole request head `read_timeout_s` after it opened or after its previous response (uvicorn's own
    keep-alive timer stops at the first byte, so a client trickling a header a byte at a time would hold the
    connection forever)."""
    try:
        import httptools  # noqa: F401 - the C parser: a fraction of h11's time per request
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Protocol

    class HeaderDeadline(Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def connection_lost(self, exc) -> None:
            if getattr(self, "_header_timer", None) is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            if getattr(self, "_header_timer", None) is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(read_timeout_s, self._header_deadline_passed, self.cycle)

        def _header_deadline_passed(self, cycle) -> None:
            # No request began since the deadline was armed, and none is running: the head is overdue.
            idle = self.cycle is cycle and (cycle is None or cycle.response_complete)
            if idle and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline
