"""A loopback chat-completions server that misbehaves on purpose, for testing the LLM-tier client.

Each request's fate comes from a plan keyed by the last user message and the attempt number for that
message: answer, 401, 429 with Retry-After, 500, answer too slowly, send a malformed body, or drop the
connection without a response; or, like a careless gateway, repeat the caller's API key (in an answer,
an error body, a redirect's Location) in every encoding `key_forms` lists. Answers echo the user message
(`echo: <text>`) with a `usage` object, so a test can check that every row got its own answer. Every
request is counted.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = (
    "ok", "401", "429", "500", "slow", "malformed", "drop", "echo_auth_400", "echo_auth_500",
    "echo_key", "echo_key_500", "redirect_key",
)  # fmt: skip


def key_forms(key: str) -> dict[str, str]:
    """The caller's key as careless servers echo it: as is, in another case, base64 (alone, as HTTP Basic
    credentials `user:key`, after `Bearer `), URL-encoded, hex, JSON-escaped."""
    raw = key.encode()
    return {
        "plain": key,
        "upper": key.upper(),
        "lower": key.lower(),
        "base64": base64.b64encode(raw).decode(),
        "basic_auth": base64.b64encode(b"user:" + raw).decode(),
        "bearer_urlsafe_base64": base64.urlsafe_b64encode(b"Bearer " + raw).decode().rstrip("="),
        "url": urllib.parse.quote(key, safe=""),
        "hex": raw.hex(),
        "json_escaped": key.replace("/", "\\/"),
    }


def echoed_key_text(headers) -> str:
    key = headers.get("Authorization", "").removeprefix("Bearer ")
    return " ".join(f"{name}={form}" for name, form in key_forms(key).items())


class FaultServer:
    """`plan(text, attempt) -> fault`; attempt counts from 1 per distinct user message."""

    def __init__(
        self,
        plan: Callable[[str, int], str],
        *,
        slow_s: float = 1.0,
        retry_after: str = "0.05",
        usage: bool = True,
        port: int = 0,
        answer: Callable[[str], str] | None = None,
    ):
        """`answer(text)`: the content of a normal answer to a user message (default: "echo: <text>")."""
        self.plan, self.slow_s, self.retry_after, self.usage = plan, slow_s, retry_after, usage
        self.answer = answer
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self.seen: list[tuple[str, str, float]] = []  # (text, fault, time)
        self.faults = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fault-model"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                with server.lock:
                    server.attempts[text] += 1
                    fault = server.plan(text, server.attempts[text])
                    server.seen.append((text, fault, time.monotonic()))
                    server.faults[fault] += 1
                if fault == "429":
                    self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": server.retry_after})
                elif fault == "401":
                    self._send(401, b'{"error": {"message": "invalid api key"}}')
                elif fault == "500":
                    self._send(500, b'{"error": {"message": "internal error"}}')
                elif fault == "malformed":
                    self._send(200, b'{"choices": [{"message": {"content": "cut off')
                elif fault.startswith("echo_auth"):  # a careless gateway that repeats the caller's headers
                    status = int(fault.rsplit("_", 1)[1])
                    echo = json.dumps({"error": {"message": f"bad request from {self.headers.get('Authorization')}"}})
                    self._send(status, echo.encode())
                elif fault == "echo_key_500":  # the key, in every encoding, in an error body (raw JSON text)
                    self._send(500, ('{"error": {"message": "' + echoed_key_text(self.headers) + '"}}').encode())
                elif fault == "redirect_key":  # a gateway that moves the key into the URL it redirects to
                    forms = key_forms(self.headers.get("Authorization", "").removeprefix("Bearer "))
                    location = f"http://127.0.0.1:1/v1/chat/completions?key={forms['plain']}&auth={forms['url']}"
                    self._send(302, b"", {"Location": location})
                elif fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                else:
                    if fault == "slow":
                        time.sleep(server.slow_s)
                    content = server.answer(text) if server.answer else f"echo: {text}"
                    if fault == "echo_key":  # a 200 answer that repeats the caller's key, in every encoding
                        content += " " + echoed_key_text(self.headers)
                    answer = {
                        "id": "chatcmpl-fault",
                        "object": "chat.completion",
                        "model": body["model"] if fault != "echo_key" else echoed_key_text(self.headers),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10 + len(text.split()), "completion_tokens": 3, "total_tokens": 13},
                    }
                    if not server.usage:  # some gateways and local servers send none
                        del answer["usage"]
                    self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes, headers: dict | None = None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): fine
                    pass

        return Handler
