"""The LLM tier over HTTP: any OpenAI-compatible `/chat/completions` endpoint.

httpx with asyncio rather than the `openai` SDK: the SDK retries on its own schedule and hides how many
attempts a row took, while this module must count every attempt, honour `Retry-After`, give each row
a latency of its own, record a final failure with its reason instead of raising, and talk to gateways
that implement only part of the API. The protocol used is one JSON POST, which httpx does well.

Every answer goes through the response cache first (baselines/cache.py): a rerun pays for nothing twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from slmtier.baselines.cache import ResponseCache, build_cache_key
from slmtier.config import EndpointConfig
from slmtier.errors import SlmtierError

log = logging.getLogger(__name__)
# httpx logs every request at INFO; a benchmark makes thousands.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Worth another attempt: rate limits, overload, server errors. Other 4xx are the request's own fault.
RETRYABLE_STATUS = {408, 409, 425, 429}
# The endpoint refuses the whole run, not one row: stop at once with what to fix.
REFUSED_STATUS = {
    401: "the endpoint rejected the API key",
    403: "the API key is not allowed to use this model or endpoint",
    404: "no such endpoint or model",
}
MAX_RETRY_AFTER_S = 600.0
ERROR_TEXT_CHARS = 300


class EndpointRefused(SlmtierError):
    """A 401/403/404: every request would fail the same way."""


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RequestFailed(Exception):
    """A response that retrying will not fix (e.g. 400 for this request)."""


@dataclass(frozen=True)
class Reply:
    """One chat completion, as cached: the answer and what the endpoint said about it."""

    content: str
    input_tokens: int | None  # from `usage`; None when the endpoint sent none
    output_tokens: int | None
    latency_ms: float  # the successful attempt, request sent to body received
    finish_reason: str | None
    model: str | None  # the model id the endpoint says answered


@dataclass(frozen=True)
class Outcome:
    reply: Reply | None  # None = failed after every attempt
    error: str | None
    attempts: int  # HTTP requests made for this row in this run (0 = answered from the cache)
    cached: bool


def read_api_key(endpoint: EndpointConfig) -> str | None:
    """The key from the environment variable the config names; a clear error if it is not set."""
    if not endpoint.api_key_env:
        return None
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise SlmtierError(
            f"environment variable {endpoint.api_key_env} (baseline.endpoint.api_key_env) is not set; "
            f"export it, or set baseline.endpoint.api_key_env=null for an endpoint without a key"
        )
    return key


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
    """A Reply from a chat-completions body; a body that is not one is retryable (proxies garble answers)."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise RetryableError(f"malformed response body ({type(err).__name__}): {body[:120]!r}") from err
    if not isinstance(content, str):
        raise RetryableError(f"malformed response body: content is {type(content).__name__}, not text")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Reply(
        content=content,
        input_tokens=_as_count(usage.get("prompt_tokens")),
        output_tokens=_as_count(usage.get("completion_tokens")),
        latency_ms=latency_ms,
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
    )


def _reply_from_cache(entry: dict | None) -> Reply | None:
    try:
        return Reply(**entry) if entry is not None else None
    except TypeError:  # written by another slmtier version: ask again
        return None


def _as_count(value) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def check_endpoint(endpoint: EndpointConfig) -> None:
    """GET <base_url>/models before any training: a wrong key or an unreachable URL fails at start-up.
    Gateways that do not list models (404/405) pass; the first real request will tell."""
    url = endpoint.base_url.rstrip("/") + "/models"
    headers = build_headers(endpoint, read_api_key(endpoint))
    try:
        response = httpx.get(url, headers=headers, timeout=min(endpoint.timeout_s, 30.0))
    except httpx.HTTPError as err:
        raise SlmtierError(
            f"cannot reach the LLM endpoint {endpoint.base_url} ({type(err).__name__}: {err}); "
            "check baseline.endpoint.base_url, or set baseline.endpoint.check_at_start=false"
        ) from err
    if response.status_code in (401, 403):
        raise EndpointRefused(
            f"{url}: HTTP {response.status_code}, {REFUSED_STATUS[response.status_code]}; "
            f"check the key in ${endpoint.api_key_env} and baseline.endpoint.api_key_header"
        )


class ChatClient:
    """Sends chat requests concurrently (at most `max_concurrency` in flight), with retries and the cache."""

    def __init__(self, endpoint: EndpointConfig, cache: ResponseCache, *, api_key: str | None):
        self.endpoint = endpoint
        self.cache = cache
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self.params = build_request_params(endpoint)
        self._headers = build_headers(endpoint, api_key)
        self._secret = api_key
        self.requests_sent = 0

    def complete_all(self, conversations: list[list[dict]], *, desc: str = "llm") -> list[Outcome]:
        """One Outcome per conversation, in order. Raises EndpointRefused on 401/403/404."""
        return _run_coroutine(self._complete_all(conversations, desc))

    async def _complete_all(self, conversations: list[list[dict]], desc: str) -> list[Outcome]:
        semaphore = asyncio.Semaphore(self.endpoint.max_concurrency)
        in_flight: dict[str, asyncio.Task] = {}  # the same question twice in one run is asked once
        limits = httpx.Limits(max_connections=self.endpoint.max_concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=self.endpoint.timeout_s) as client:
            bar = tqdm(total=len(conversations), desc=desc, unit="req")

            async def one(messages: list[dict]) -> Outcome:
                key = build_cache_key(self.endpoint.base_url, self.endpoint.model, messages, self.params)
                reply = _reply_from_cache(self.cache.get(key))
                if reply is not None:
                    outcome = Outcome(reply, None, 0, True)
                else:
                    if key not in in_flight:
                        in_flight[key] = asyncio.ensure_future(self._ask(client, semaphore, key, messages))
                    outcome = await asyncio.shield(in_flight[key])
                bar.update(1)
                return outcome

            tasks = [asyncio.ensure_future(one(messages)) for messages in conversations]
            try:
                return await asyncio.gather(*tasks)
            finally:
                for task in [*tasks, *in_flight.values()]:
                    task.cancel()
                bar.close()

    async def _ask(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, key: str, messages) -> Outcome:
        body = {"model": self.endpoint.model, "messages": messages, **self.params}
        attempts, last_error = 0, ""
        async with semaphore:
            for attempt in range(self.endpoint.max_retries + 1):
                attempts += 1
                try:
                    reply = await self._post(client, body)
                except RetryableError as err:
                    last_error = self._redact(str(err))
                    if attempt == self.endpoint.max_retries:
                        break
                    await asyncio.sleep(self._backoff(attempt, err.retry_after))
                    continue
                except RequestFailed as err:
                    return Outcome(None, self._redact(str(err)), attempts, False)
                self.cache.put(key, base_url=self.endpoint.base_url, model=self.endpoint.model, response=asdict(reply))
                return Outcome(reply, None, attempts, False)
        return Outcome(None, f"gave up after {attempts} attempts; last: {last_error}", attempts, False)

    async def _post(self, client: httpx.AsyncClient, body: dict) -> Reply:
        self.requests_sent += 1
        began = time.perf_counter()
        try:
            # wait_for bounds the whole exchange; httpx's own timeout only bounds each read.
            response = await asyncio.wait_for(
                client.post(self.url, json=body, headers=self._headers), timeout=self.endpoint.timeout_s
            )
        except (asyncio.TimeoutError, httpx.TimeoutException) as err:
            raise RetryableError(f"timed out after {self.endpoint.timeout_s:g} s") from err
        except httpx.TransportError as err:  # refused, reset, dropped mid-response, protocol errors
            raise RetryableError(f"connection error ({type(err).__name__}: {err})") from err
        latency_ms = (time.perf_counter() - began) * 1000
        status = response.status_code
        if status in REFUSED_STATUS:
            raise EndpointRefused(
                f"{self.url}: HTTP {status}, {REFUSED_STATUS[status]} (model {self.endpoint.model!r}); "
                f"check baseline.endpoint.base_url, .model and the key in ${self.endpoint.api_key_env}: "
                f"{self._redact(response.text[:ERROR_TEXT_CHARS])}"
            )
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryableError(f"HTTP {status}: {response.text[:ERROR_TEXT_CHARS]}", retry_after)
        if status >= 400:
            raise RequestFailed(f"HTTP {status}: {response.text[:ERROR_TEXT_CHARS]}")
        return parse_chat_response(response.content, latency_ms)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: Retry-After when the server sent one, else exponential with jitter."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S) * random.uniform(1.0, 1.1)
        ceiling = min(self.endpoint.backoff_max_s, self.endpoint.backoff_initial_s * 2**attempt)
        return ceiling * random.uniform(0.5, 1.0)

    def _redact(self, text: str) -> str:
        """Error texts are stored in run files: a server that echoes the key must not put it there."""
        return text.replace(self._secret, "***") if self._secret else text


def _run_coroutine(coroutine):
    """asyncio.run, also from inside a running event loop (a notebook), via a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def default_cache_path(endpoint: EndpointConfig, cache_dir: str) -> Path:
    return Path(endpoint.cache_path or Path(cache_dir) / "llm_responses.sqlite").expanduser()
