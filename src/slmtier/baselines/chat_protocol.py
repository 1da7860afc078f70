"""The OpenAI chat-completions wire format as the LLM-tier client uses it: request headers and
parameters, the reply it keeps, and how response bodies and Retry-After headers are read."""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass

from slmtier.config import EndpointConfig

ERROR_TEXT_CHARS = 300
BEARER = re.compile(r"Bearer\s+\S+", re.IGNORECASE)


class RetryableError(Exception):
    """Worth another attempt: rate limits, overload, server errors, timeouts, a body cut short."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RequestFailed(Exception):
    """A response that asking again will not fix (a 400 for this request, an answer of the wrong shape).
    Not retried: a 200 answer is billed, so repeating it would pay again for the same garbage."""


@dataclass(frozen=True)
class Reply:
    """One chat completion, as cached: the answer and what the endpoint said about it."""

    content: str
    input_tokens: int | None  # from `usage`; None when the endpoint sent none
    output_tokens: int | None
    latency_ms: float  # the successful attempt, request sent to body received
    finish_reason: str | None
    model: str | None  # the model id the endpoint says answered


def build_headers(endpoint: EndpointConfig, api_key: str | None) -> dict[str, str]:
    if api_key is None:
        return {}
    if endpoint.api_key_header.lower() == "authorization":
        return {"Authorization": f"Bearer {api_key}"}
    return {endpoint.api_key_header: api_key}


def build_request_params(endpoint: EndpointConfig) -> dict:
    """Generation parameters sent with every request (and part of the cache key)."""
    params: dict = {endpoint.max_tokens_param: endpoint.max_tokens}
    if endpoint.temperature is not None:
        params["temperature"] = endpoint.temperature
    return params


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_chat_response(body: bytes, latency_ms: float) -> Reply:
    """A Reply from a chat-completions body. A body that is not JSON (cut short by a proxy) is retryable;
    JSON of the wrong shape is RequestFailed."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RetryableError(f"malformed response body ({type(err).__name__}): {body[:120]!r}") from err
    try:
        choice = data["choices"][0]
        content = _text_of(choice["message"].get("content"))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
        raise RequestFailed(f"unexpected response shape ({type(err).__name__}: {err}): {body[:200]!r}") from err
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Reply(
        content=content,
        input_tokens=_as_count(usage.get("prompt_tokens")),
        output_tokens=_as_count(usage.get("completion_tokens")),
        latency_ms=latency_ms,
        finish_reason=choice.get("finish_reason"),
        model=data.get("model") if isinstance(data.get("model"), str) else None,
    )


def redact(text: str, secret: str | None) -> str:
    """Error texts go into run files: the key, and any bearer token a server echoes, are masked before
    the text is cut, so no prefix of a key survives at the cut."""
    if secret:
        text = text.replace(secret, "***")
    return BEARER.sub("Bearer ***", text)[:ERROR_TEXT_CHARS]


def _text_of(content) -> str:
    """Message content as text: a string, null (a refusal or tool call: empty), or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise ValueError(f"content is {type(content).__name__}, not text")


def _as_count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
