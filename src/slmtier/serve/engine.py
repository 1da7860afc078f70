"""The SLM tier's model behind a queue: requests that arrive together are answered in one batch.

A worker thread owns the model. It takes the first waiting request, gathers more for up to
`max_wait_ms` (or until `max_batch_size`), groups them by adapter and sampling settings, and runs one
`generate` per group: concurrent clients share forward passes instead of queueing behind each other.
Requests to the base model's name run with the adapter switched off, as vLLM's multi-LoRA serving does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from transformers.generation.streamers import BaseStreamer

from slmtier.inference import build_generation_config, count_tokens, generate_batch

log = logging.getLogger(__name__)


@dataclass
class ChatJob:
    prompt: str  # the chat template already applied
    adapter: bool  # False: the base model without the run's adapter
    max_tokens: int
    temperature: float
    top_p: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_text: Callable[[str], None] | None = None  # streaming: called (in the event loop) with each new piece of text
    logprobs: bool = False  # also return each answer token with its log-probability (greedy: the benchmark's)


@dataclass(frozen=True)
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn) | "length" (max_tokens reached)
    # (token text, log-probability) per answer token, the end of turn excluded (as the benchmark's confidence)
    token_logprobs: list[tuple[str, float]] | None = None


@dataclass
class EngineStats:
    requests: int = 0
    batches: int = 0
    largest_batch: int = 0


@dataclass
class BatchingEngine:
    model: object  # a PeftModel (the base weights plus the run's adapter), or a fully fine-tuned model
    tokenizer: object
    max_batch_size: int = 16
    max_wait_ms: float = 5.0
    bf16: bool = False
    chat_template_kwargs: dict = field(default_factory=dict)  # the base model's template quirks
    stats: EngineStats = field(default_factory=EngineStats)

    def __post_init__(self):
        self._queue: queue.Queue[ChatJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slmtier-engine", daemon=True)
        self.model.eval()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.tokenizer, text)

    def submit(self, job: ChatJob) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs = [first]
            deadline = time.monotonic() + self.max_wait_ms / 1000
            while len(jobs) < self.max_batch_size and (remaining := deadline - time.monotonic()) > 0:
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                jobs.append(job)
            groups: dict[tuple, list[ChatJob]] = {}
            for job in jobs:
                groups.setdefault((job.adapter, job.temperature, job.top_p), []).append(job)
            for group in groups.values():
                self._answer(group)

    def _answer(self, jobs: list[ChatJob]) -> None:
        try:
            results = self._generate(jobs)
        except Exception as err:  # noqa: BLE001 - every waiting client must hear about it, and the worker must live
            log.exception("generation failed for a batch of %d", len(jobs))
            for job in jobs:
                job.loop.call_soon_threadsafe(_settle, job.future, None, err)
            return
        self.stats.requests += len(jobs)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        for job, result in zip(jobs, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, result, None)

    def _generate(self, jobs: list[ChatJob]) -> list[ChatResult]:
        first = jobs[0]
        config = build_generation_config(
            self.tokenizer,
            max_new_tokens=max(job.max_tokens for job in jobs),
            temperature=first.temperature,
            top_p=first.top_p,
        )
        extra = {}
        if any(job.on_text for job in jobs):
            extra["streamer"] = RowStreamer(jobs, self.tokenizer)
        switch = self.model.disable_adapter() if not first.adapter else contextlib.nullcontext()
        with switch:
            outputs, logprobs = generate_batch(
                self.model,
                self.tokenizer,
                [job.prompt for job in jobs],
                generation_config=config,
                bf16=self.bf16,
                record_logprobs=any(job.logprobs for job in jobs),
                **extra,
            )
        results = []
        for index, (job, tokens) in enumerate(zip(jobs, outputs, strict=True)):
            tokens = tokens[: job.max_tokens]  # the batch ran to its longest request's limit
            ended = bool(tokens) and tokens[-1] in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id)
            answer_tokens = tokens[: len(tokens) - ended]
            results.append(
                ChatResult(
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                    prompt_tokens=self.count_tokens(job.prompt),
                    completion_tokens=len(tokens),
                    finish_reason="stop" if ended else "length",
                    token_logprobs=[(self.tokenizer.decode([token]), value)
                                    for token, value in zip(answer_tokens, logprobs[index], strict=False)]
                    if job.logprobs else None,
                )
            )  # fmt: skip
        return results


class RowStreamer(BaseStreamer):
    """Hands each streaming request its new text as the batch decodes (transformers' own streamers take
    one row only). Text is released only when it decodes cleanly, so multi-byte characters never split."""

    def __init__(self, jobs: list[ChatJob], tokenizer):
        self.jobs, self.tokenizer = jobs, tokenizer
        self.tokens: list[list[int]] = [[] for _ in jobs]
        self.sent = [0] * len(jobs)
        self.done = [False] * len(jobs)
        self.prompt_seen = False
        self.stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate first hands over the prompt itself
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.jobs), -1)[:, -1].tolist()):
            job = self.jobs[row]
            if self.done[row] or job.on_text is None:
                continue
            if token in self.stops or len(self.tokens[row]) >= job.max_tokens:
                self.done[row] = True
                continue
            self.tokens[row].append(token)
            text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue
            piece, self.sent[row] = text[self.sent[row] :], len(text)
            if piece:
                job.loop.call_soon_threadsafe(job.on_text, piece)

    def end(self) -> None:
        pass


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
