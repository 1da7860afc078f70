"""The OpenAI chat-completions wire format as the LLM-tier client uses it: request headers and
parameters, the reply it keeps, and how response bodies and Retry-After headers are read."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import re
import time
from collections.abc import Callable
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
    token_logprobs: list[float] | None = None  # each answer token's, when asked for (EndpointConfig.logprobs)


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
    if endpoint.logprobs:
        params["logprobs"] = True
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


def parse_chat_response(body: bytes, latency_ms: float, *, mask: Callable[[str], str] = lambda text: text) -> Reply:
    """A Reply from a chat-completions body. A body that is not JSON (cut short by a proxy) is retryable;
    JSON of the wrong shape is RequestFailed. Every text taken from the body, the answer included, goes
    through `mask` (the API key in its encodings: baselines/api_keys.py) before anything keeps or shows it."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RetryableError(f"malformed response body ({type(err).__name__}): {_excerpt(body, mask, 120)}") from err
    try:
        choice = data["choices"][0]
        content = _text_of(choice["message"].get("content"))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
        shape = mask(f"{type(err).__name__}: {err}")
        raise RequestFailed(f"unexpected response shape ({shape}): {_excerpt(body, mask, 200)}") from err
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    reply = Reply(
        content=content,
        input_tokens=_as_count(usage.get("prompt_tokens")),
        output_tokens=_as_count(usage.get("completion_tokens")),
        latency_ms=latency_ms,
        finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        token_logprobs=_token_logprobs(choice.get("logprobs")),
    )
    return mask_reply(reply, mask)


def _token_logprobs(logprobs) -> list[float] | None:
    """OpenAI's `choices[0].logprobs.content[*].logprob`; None when absent or of another shape."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    values = [item.get("logprob") if isinstance(item, dict) else None for item in content]
    return [float(value) for value in values] if all(isinstance(v, int | float) for v in values) else None


def mask_reply(reply: Reply, mask: Callable[[str], str]) -> Reply:
    """The reply with `mask` applied to each text the server chose."""
    texts = {"content": reply.content, "finish_reason": reply.finish_reason, "model": reply.model}
    return dataclasses.replace(reply, **{name: mask(text) for name, text in texts.items() if text is not None})


def redact(text: str, mask: Callable[[str], str]) -> str:
    """Error texts go into run files: the key (in its encodings), and any bearer token a server echoes,
    are masked before the text is cut, so no prefix of a key survives at the cut."""
    return BEARER.sub("Bearer ***", mask(text))[:ERROR_TEXT_CHARS]


def _excerpt(body: bytes, mask: Callable[[str], str], chars: int) -> str:
    """The start of a body for an error message, masked before it is cut."""
    return repr(mask(body.decode("utf-8", errors="replace"))[:chars])


def _text_of(content) -> str:
    """Message content as text: a string, null (a refusal or tool call: empty), or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise ValueError(f"content is {type(content).__name__}, not text")


def _as_count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
