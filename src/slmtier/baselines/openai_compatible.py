"""The LLM tier over HTTP: any OpenAI-compatible `/chat/completions` endpoint.

httpx with asyncio rather than the `openai` SDK: the SDK retries on its own schedule and hides how many
attempts a row took, while this module must count every attempt, honour `Retry-After`, give each row
a latency of its own, record a final failure with its reason instead of raising, and talk to gateways
that implement only part of the API. The protocol used is one JSON POST, which httpx does well.

Every answer goes through the response cache first (baselines/cache.py): a rerun pays for nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from slmtier.baselines.api_keys import build_key_mask, is_variable_name
from slmtier.baselines.cache import ResponseCache, build_cache_key
from slmtier.baselines.chat_protocol import (
    Reply,
    RequestFailed,
    RetryableError,
    build_headers,
    build_request_params,
    mask_reply,
    parse_chat_response,
    parse_retry_after,
    redact,
)
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


class EndpointRefused(SlmtierError):
    """A 401/403/404 or a redirect: every request would fail the same way."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    reply: Reply | None  # None = failed after every attempt
    error: str | None
    attempts: int  # HTTP requests made for this row in this run (0 = answered from the cache)
    cached: bool  # answered without paying in this run (the cache, or the same question earlier in the run)


def check_key_variable(endpoint: EndpointConfig) -> None:
    """api_key_env must name a variable. Checked before the config is written anywhere: a key pasted
    there by mistake must not reach config.yaml (and is not repeated in the message)."""
    if endpoint.api_key_env and not is_variable_name(endpoint.api_key_env):
        raise SlmtierError(
            "baseline.endpoint.api_key_env must be the NAME of an environment variable (letters, digits, _), "
            "such as OPENAI_API_KEY, not the key itself; export the key and name its variable"
        )


def read_api_key(endpoint: EndpointConfig) -> str | None:
    """The key from the environment variable the config names; a clear error if it is not set."""
    check_key_variable(endpoint)
    if not endpoint.api_key_env:
        return None
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise SlmtierError(
            f"environment variable {endpoint.api_key_env} (baseline.endpoint.api_key_env) is not set; "
            f"export it, or set baseline.endpoint.api_key_env=null for an endpoint without a key"
        )
    return key


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
        # Applied to all the server sends (answers, errors, a redirect's target) before it is kept or shown.
        self._mask = build_key_mask(api_key)
        self.requests_sent = 0

    def complete_all(self, conversations: list[list[dict]], *, desc: str = "llm") -> list[Outcome]:
        """One Outcome per conversation, in order. Raises EndpointRefused on 401/403/404 or a redirect."""
        return _run_coroutine(self._complete_all(conversations, desc))

    async def _complete_all(self, conversations: list[list[dict]], desc: str) -> list[Outcome]:
        limits = httpx.Limits(max_connections=self.endpoint.max_concurrency)
        # SQLite waits (up to its timeout) while another process of a sweep writes: never in the event loop,
        # where it would stall every request in flight. One thread, so the connection is never shared.
        database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmtier-cache")
        async with httpx.AsyncClient(limits=limits, timeout=self.endpoint.timeout_s) as client:
            bar = tqdm(total=len(conversations), desc=desc, unit="req")
            try:
                session = ChatSession(self, client, database)
                return await session.complete_all(conversations, on_done=lambda: bar.update(1))
            finally:
                bar.close()
                database.shutdown(wait=True)

    def _store(self, key: str, reply: Reply) -> None:
        try:
            self.cache.put(
                key, base_url=self.endpoint.base_url, model=self.endpoint.model, response=dataclasses.asdict(reply)
            )
        except sqlite3.Error as err:  # the answer is still used; only a rerun would pay for it again
            log.warning("could not cache an answer in %s (%s); it is used but not kept", self.cache.path, err)

    async def _ask(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, messages) -> Outcome:
        body = {"model": self.endpoint.model, "messages": messages, **self.params}
        attempts, last_error = 0, ""
        async with semaphore:
            for attempt in range(self.endpoint.max_retries + 1):
                attempts += 1
                try:
                    reply = await self._post(client, body)
                except RetryableError as err:
                    last_error = redact(str(err), self._mask)
                    if attempt == self.endpoint.max_retries:
                        break
                    await asyncio.sleep(self._backoff(attempt, err.retry_after))
                    continue
                except RequestFailed as err:
                    return Outcome(None, redact(str(err), self._mask), attempts, False)
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
        except httpx.RequestError as err:  # refused, reset, dropped mid-response, undecodable, protocol errors
            raise RetryableError(f"connection error ({type(err).__name__}: {err})") from err
        latency_ms = (time.perf_counter() - began) * 1000
        status = response.status_code
        text = redact(response.text, self._mask)
        if status in REFUSED_STATUS or 300 <= status < 400:
            reason = REFUSED_STATUS.get(status) or f"redirected to {response.headers.get('location')!r}"
            raise EndpointRefused(
                self._mask(
                    f"{self.url}: HTTP {status}, {reason} (model {self.endpoint.model!r}); check "
                    f"baseline.endpoint.base_url, .model and the key in ${self.endpoint.api_key_env}: {text}"
                )
            )
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableError(f"HTTP {status}: {text}", parse_retry_after(response.headers.get("retry-after")))
        if status >= 400:
            raise RequestFailed(f"HTTP {status}: {text}")
        return parse_chat_response(response.content, latency_ms, mask=self._mask)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: Retry-After when the server sent one, else exponential with jitter."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S) * random.uniform(1.0, 1.1)
        ceiling = min(self.endpoint.backoff_max_s, self.endpoint.backoff_initial_s * 2**attempt)
        return ceiling * random.uniform(0.5, 1.0)


class ChatSession:
    """A ChatClient on an event loop that lives on: an HTTP client kept open (its connections reused) and one
    thread for the response cache. The benchmark opens one per split; `slmtier route` one per endpoint tier
    for as long as it serves, each request's question asked as it comes (concurrently, up to the session's
    limit), so that no request pays for a new loop, thread pool or connection (which cost the router memory
    it never gave back)."""

    def __init__(self, chat: ChatClient, client: httpx.AsyncClient, database: ThreadPoolExecutor, *,
                 share_finished: bool = True, concurrency: int | None = None):  # fmt: skip
        self.chat, self.client, self.database = chat, client, database
        self.semaphore = asyncio.Semaphore(concurrency or chat.endpoint.max_concurrency)
        # The same question twice is asked once: while it is in flight always; once answered (or failed) too
        # when `share_finished` (a benchmark's split; a router, which lives on, forgets it).
        self.share_finished = share_finished
        self.asked: dict[str, asyncio.Future] = {}

    @classmethod
    def open(cls, chat: ChatClient, *, max_connections: int) -> ChatSession:
        """A session of its own (closed with `aclose`), for a caller whose event loop runs for long."""
        limits = httpx.Limits(max_connections=max_connections)
        client = httpx.AsyncClient(limits=limits, timeout=chat.endpoint.timeout_s)
        database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmtier-cache")
        return cls(chat, client, database, share_finished=False, concurrency=max_connections)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.database.shutdown(wait=True)
        self.chat.cache.close()

    async def complete_all(self, conversations: list[list[dict]], on_done: Callable[[], None] = lambda: None):
        async def one(messages: list[dict]) -> Outcome:
            outcome = await self.complete(messages)
            on_done()
            return outcome

        tasks = [asyncio.ensure_future(one(messages)) for messages in conversations]
        try:
            return await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def complete(self, messages: list[dict]) -> Outcome:
        chat, loop = self.chat, asyncio.get_running_loop()
        key = build_cache_key(chat.endpoint.base_url, chat.endpoint.model, messages, chat.params)
        if key in self.asked:  # asked (or being asked) already: share its answer, pay nothing
            try:
                outcome = await asyncio.shield(self.asked[key])
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # this request itself was cancelled
                    raise
                return await self.complete(messages)  # the one asking gave up (its client left): ask anew
            return dataclasses.replace(outcome, attempts=0, cached=outcome.reply is not None)
        shared = self.asked[key] = loop.create_future()
        try:
            entry = await loop.run_in_executor(self.database, chat.cache.get, key)
            reply = _reply_from_cache(entry, chat._mask)
            if reply is not None:
                outcome = Outcome(reply, None, 0, True)
            else:
                outcome = await chat._ask(self.client, self.semaphore, messages)
                if outcome.reply is not None:
                    await loop.run_in_executor(self.database, chat._store, key, outcome.reply)
            shared.set_result(outcome)
            return outcome
        except BaseException:
            shared.cancel()  # whoever waits on the same question asks it anew (a refusal will refuse them too)
            self.asked.pop(key, None)
            raise
        finally:
            if not self.share_finished:
                self.asked.pop(key, None)


def _reply_from_cache(entry: dict | None, mask: Callable[[str], str]) -> Reply | None:
    """Masked again: an entry cached by an slmtier version that masked less may hold an echoed key."""
    try:
        return mask_reply(Reply(**entry), mask) if entry is not None else None
    except TypeError:  # written by another slmtier version: ask again
        return None


def _run_coroutine(coroutine):
    """asyncio.run, also from inside a running event loop (a notebook), via a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def default_cache_path(endpoint: EndpointConfig, cache_dir: str) -> Path:
    return Path(endpoint.cache_path or Path(cache_dir) / "llm_responses.sqlite").expanduser()
