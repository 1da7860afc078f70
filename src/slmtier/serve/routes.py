"""One task as the router serves it, loaded from its routing.yaml: the task (prompt, parser), the local tier
that answers first, the LLM tier behind it, and the cascade's threshold.

Every tier is loaded through its own contract (slmtier.tiers.<name>.load, slmtier.baselines.tier.load_llm_tier)
from the run directory the routing was decided in, and answers through slmtier.candidate.answer: the prompt,
the parser and the confidence are the benchmark's, by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slmtier.candidate import Answer, Candidate, answer
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.report.routing import ROUTING_VERSION

log = logging.getLogger(__name__)
INPUT_GROUP = "input"


@dataclass
class TaskRoute:
    name: str  # the model name clients ask for (routing.yaml `task`)
    task: Any
    tier: str  # encoder | slm | cascade | llm
    local_name: str | None  # the local tier that answers (first, for a cascade)
    local: Candidate | None
    llm: Candidate | None
    escalate_below: float | None = None  # cascade: send to the LLM when the local confidence is below this
    input_pattern: re.Pattern | None = None  # None: the whole last user message is the task input
    shadow_rate: float = 0.0  # share of locally answered requests also sent to the LLM, off the request path
    shadow_max_usd: float | None = None  # stop shadowing once the LLM's shadow answers cost this much
    shadow_spent_usd: float = 0.0
    routing_id: str = ""  # slmtier.report.routing.routing_id of the routing.yaml, stamped on each logged request
    budget: PromptBudget | None = None  # None: no token count before queueing (the input's characters are capped)
    vllm_command: str | None = None  # the SLM tier answering in process: the same adapter on vLLM, at scale
    batcher: Batcher | None = field(default=None, repr=False)
    llm_session: Any = field(default=None, repr=False)  # the LLM tier's ChatSession while the router runs
    local_session: Any = field(default=None, repr=False)  # a remote SLM tier's (slm.endpoint), likewise

    def shadowed(self, request_id: str) -> bool:
        """Whether this request is shadowed: a hash of its id against the rate (the same id, the same choice,
        in every replica), while the shadow budget lasts."""
        if self.llm is None or self.shadow_rate <= 0:
            return False
        if self.shadow_max_usd is not None and self.shadow_spent_usd >= self.shadow_max_usd:
            return False
        return sample_point(request_id) < self.shadow_rate


@dataclass(frozen=True)
class PromptBudget:
    """The most tokens one request's prompt may take, counted before it is queued: a request over it is a 400,
    never minutes of the model's time (an SLM's generation slows with the prompt, and holds its batch)."""

    count: Callable[[Example], int]
    limit: int
    why: str  # where the limit comes from, for the 400's message

    def check(self, example: Example) -> None:
        tokens = self.count(example)
        if tokens > self.limit:
            raise PromptTooLong(f"this request's prompt is {tokens:,} tokens, over this task's limit of {self.limit:,} "
                                f"({self.why}): send a shorter input")  # fmt: skip


class PromptTooLong(SlmtierError):
    pass


def prompt_budget(task, local_name: str | None, local, llm, cap: int | None) -> PromptBudget | None:
    """The SLM tier: its whole prompt (instruction, few-shot turns, input) must leave room for its answer in the
    model's context, and stay under `cap` when one is set. Other tiers: the input alone against `cap` (the
    encoder truncates at its max_length, as it did in the benchmark; the LLM's provider has its own limit)."""
    from slmtier.inference import render_prompt
    from slmtier.tiers import slm

    if local_name == slm.NAME and hasattr(local, "hf_model"):
        tokenizer, kwargs = local.tokenizer, local.chat_template_kwargs

        def count(example: Example) -> int:
            prompt = render_prompt(tokenizer, task.build_messages(example, few_shot=local.few_shot), **kwargs)
            return len(tokenizer(prompt, add_special_tokens=False).input_ids)

        context = getattr(local.hf_model.config, "max_position_embeddings", None)
        limits = [(cap, "the router's --max-prompt-tokens")] if cap else []
        if context:
            limits.append((context - local.max_new_tokens, f"the SLM's context of {context:,} tokens less its "
                                                           f"{local.max_new_tokens}-token answer"))  # fmt: skip
        return PromptBudget(count, *min(limits)) if limits else None
    if not cap:
        return None
    if local is not None and hasattr(local, "tokenizer"):
        return PromptBudget(lambda example: len(local.tokenizer(example.input).input_ids), cap,
                            "the router's --max-prompt-tokens, counted on the input")  # fmt: skip
    counter = (local or llm).count_tokens  # an endpoint's: the run's tokenizer
    return PromptBudget(lambda example: counter(example.input), cap,
                        "the router's --max-prompt-tokens, counted on the input")  # fmt: skip


def sample_point(request_id: str) -> float:
    """A request id's fixed point in [0, 1): the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(request_id.encode("utf-8")).digest()[:8], "big") / 2**64


def read_routing(path: Path) -> dict:
    try:
        routing = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SlmtierError(f"{path}: cannot read it as routing.yaml ({err})") from err
    if not isinstance(routing, dict) or routing.get("version") != ROUTING_VERSION:
        found = routing.get("version") if isinstance(routing, dict) else None
        raise SlmtierError(
            f"{path}: routing.yaml version {found!r}, and this router reads version {ROUTING_VERSION}: rebuild it "
            "with `slmtier report RUN_DIR` (or rerun the benchmark)"
        )
    return routing


def load_route(path: Path, *, max_prompt_tokens: int | None = None, llm_retry: dict | None = None) -> TaskRoute:
    """The task a routing.yaml describes, with its tiers loaded (models in memory, endpoints configured).
    `max_prompt_tokens`: a cap on one request's prompt (PromptBudget), besides the SLM's context.
    `llm_retry`: the LLM endpoint's timeout_s / max_retries / backoff_* on the request path (default: the
    benchmark's)."""
    from slmtier.baselines.tier import load_llm_tier
    from slmtier.models import load_tokenizer, resolve_model_path
    from slmtier.report.routing import routing_id
    from slmtier.run_dir import RunDir
    from slmtier.serve.vllm import build_vllm_command
    from slmtier.tasks import build_task
    from slmtier.tiers import TIERS, slm

    routing = read_routing(path)
    tier = routing["tier"]
    if tier == "undecided":
        raise SlmtierError(f"{path}: no verdict was reached ({routing['reason']}); there is nothing new to deploy")
    run = RunDir(routing["run_dir"])
    cfg = run.read_config()
    task = build_task(cfg.task)
    local_name = routing["cascade"]["via"] if tier == "cascade" else (tier if tier in TIERS else None)
    remote = (routing.get(local_name) or {}).get("endpoint") if local_name == slm.NAME else None
    if remote:  # the SLM on a server of its own (vLLM with the adapter): asked over HTTP, batched there
        local = slm.load_remote(run.path, cfg, routing[slm.NAME]["served_name"], remote, **(llm_retry or {}))
    else:
        local = TIERS[local_name].load(run.path, cfg) if local_name else None
    shadow = routing.get("shadow") or {}
    shadow_rate = float(shadow.get("rate", 0.0))
    if not 0.0 <= shadow_rate <= 1.0:
        raise SlmtierError(f"{path}: shadow.rate {shadow_rate} is not a share between 0 and 1")
    llm = None
    if tier in ("cascade", "llm") or (shadow_rate > 0 and tier in TIERS):
        # The LLM's token counts, when its endpoint reports none, are estimated with the SLM's tokenizer, as in
        # the benchmark.
        tokenizer = getattr(local, "tokenizer", None) if local_name == slm.NAME else None
        tokenizer = tokenizer or load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)
        llm = load_llm_tier(run.path, cfg, tokenizer, **(llm_retry or {}))
    return TaskRoute(
        name=routing["task"],
        task=task,
        tier=tier,
        local_name=local_name,
        local=local,
        llm=llm,
        escalate_below=routing["cascade"]["escalate_below"] if tier == "cascade" else None,
        input_pattern=compile_input_rule(routing.get("input", "last_user_message"), path),
        shadow_rate=shadow_rate if local_name else 0.0,  # a cascade too: its re-fit needs the local side
        shadow_max_usd=shadow.get("max_usd"),
        budget=prompt_budget(task, local_name, local, llm, max_prompt_tokens),
        vllm_command=build_vllm_command(cfg, run.path, routing["task"])
        if local_name == slm.NAME and not remote
        else None,
        routing_id=routing_id(routing),
    )


def compile_input_rule(rule, path: Path) -> re.Pattern | None:
    if rule == "last_user_message":
        return None
    pattern = rule.get("pattern") if isinstance(rule, dict) else None
    if not isinstance(pattern, str):
        raise SlmtierError(f"{path}: input is last_user_message or {{pattern: <regex>}}, not {rule!r}")
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as err:
        raise SlmtierError(f"{path}: input.pattern is not a regular expression ({err})") from err
    if INPUT_GROUP not in compiled.groupindex:
        raise SlmtierError(f"{path}: input.pattern needs a group named {INPUT_GROUP!r}: (?P<input>...)")
    return compiled


class Batcher:
    """Requests for one local tier answered together: a batch takes every request that queued while the model
    was busy (at most `max_batch`); the first of a batch waits at most `max_wait_ms` for others (the router's
    default 0: an idle model starts at once). One worker thread runs the model, so the event loop keeps
    accepting requests while it works. Each batch is the requests that arrived, one example each: no request
    can fill a batch on its own."""

    def __init__(self, candidate: Candidate, task, *, max_batch: int, max_wait_ms: float):
        self.candidate, self.task = candidate, task
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"slmtier-{candidate.name}")
        self._runner: asyncio.Task | None = None

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self.worker.shutdown(wait=False, cancel_futures=True)

    async def submit(self, example: Example) -> Answer:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((example, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self.queue.empty():  # what queued while the model was busy joins at once
                    batch.append(self.queue.get_nowait())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            waiting = [(example, future) for example, future in batch if not future.done()]  # a client gone
            if not waiting:
                continue
            try:
                answers = await loop.run_in_executor(
                    self.worker, answer, self.candidate, self.task, [example for example, _ in waiting]
                )
            except Exception as err:  # noqa: BLE001 - every request of the batch learns it; the router escalates
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), result in zip(waiting, answers, strict=True):
                if not future.done():
                    future.set_result(result)
