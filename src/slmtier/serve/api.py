"""What every slmtier HTTP service shares with the OpenAI API: errors as `{"error": {...}}` with OpenAI's
status codes (a malformed request is a 400, never a 422 or a 500), a request body bounded before it is read,
and an optional bearer key on every route but /health."""

from __future__ import annotations

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


def install_api_basics(app: FastAPI, *, api_key: str | None, max_body_bytes: int, open_paths=("/health",)) -> None:
    """Error handlers, the body limit and the key check, on `app`."""

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

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        """Requests declare their size and stay under max_body_bytes: a huge or endless body is refused before
        it is read (413 / 411), so one client cannot exhaust the server's memory. A chunked body (which
        declares no size) is refused too, whatever Content-Length claims beside it."""
        if request.method == "POST":
            length = request.headers.get("content-length")
            if "chunked" in request.headers.get("transfer-encoding", "").lower():
                return error_response(411, "a chunked request body is not accepted: send Content-Length")
            if length is None or not length.isdigit():
                return error_response(411, "a Content-Length header is required")
            if int(length) > max_body_bytes:
                return error_response(
                    413, f"request body of {int(length):,} bytes exceeds this server's limit {max_body_bytes:,}"
                )
        return await call_next(request)

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key and request.url.path not in open_paths:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error_response(401, "invalid or missing API key", code="invalid_api_key")
        return await call_next(request)
