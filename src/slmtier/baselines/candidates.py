"""The LLM tier as benchmark candidates: a live OpenAI-compatible endpoint, or answers from a log file.

Both see the same task prompt as the SLM (plus few-shot turns for the endpoint), and their raw text goes
through the same parser and metric. Token counts come from the endpoint's `usage` (or the log); when
absent they are counted with the SLM's tokenizer and marked `usage_estimated`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slmtier.baselines.cache import ResponseCache
from slmtier.baselines.openai_compatible import ChatClient, ChatSession, Outcome, read_api_key
from slmtier.baselines.predictions_file import LoggedAnswer, load_logged_answers
from slmtier.baselines.pricing import Price, find_price
from slmtier.config import EndpointConfig, PredictionsFileConfig, PricingConfig
from slmtier.data import Example
from slmtier.inference import Generation

log = logging.getLogger(__name__)

# Chat framing tokens per message, as OpenAI's accounting adds them; only used when estimating.
TOKENS_PER_MESSAGE = 4
MAX_LISTED_IDS = 20


def estimate_prompt_tokens(messages: list[dict], count_tokens: Callable[[str], int]) -> int:
    return sum(count_tokens(message["content"]) + TOKENS_PER_MESSAGE for message in messages) + 2


@dataclass
class EndpointCandidate:
    """The LLM behind an OpenAI-compatible endpoint, prompted with the task prompt and few-shot turns."""

    name: str
    model: str
    endpoint: EndpointConfig
    cache_path: Path
    price: Price | None
    count_tokens: Callable[[str], int]  # the fallback when the endpoint reports no usage
    few_shot: list[Example] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # what metrics.json records about the source; filled by predict
    # A split in one call (so `info` counts all of it): each paid answer is saved in the response cache as it
    # arrives, so a killed run loses nothing paid and needs no progress file of its own.
    one_call: bool = True

    def predict(self, task, examples: list[Example]) -> list[Generation]:
        conversations = [task.build_messages(example, few_shot=self.few_shot) for example in examples]
        cache = ResponseCache(self.cache_path)
        client = ChatClient(self.endpoint, cache, api_key=read_api_key(self.endpoint))
        try:
            outcomes = client.complete_all(conversations, desc=self.name)
        finally:
            cache.close()
        generations = [
            self._generation(messages, outcome) for messages, outcome in zip(conversations, outcomes, strict=True)
        ]
        self.info = {
            "kind": "openai_compatible",
            "base_url": self.endpoint.base_url,
            "endpoint_model": self.endpoint.model,
            "price": self.price.to_dict() if self.price else None,
            "cache": {"path": str(self.cache_path), "hits": cache.hits, "misses": cache.misses},
            "http_requests": client.requests_sent,
            "spent_usd": _total(g.cost_usd for g in generations if not g.cached),
        }
        return generations

    def open_session(self, *, max_connections: int) -> ChatSession:
        """A long-lived session for `apredict` on the caller's event loop (the router): one HTTP client and
        one response-cache connection for every request, closed with its `aclose`."""
        chat = ChatClient(self.endpoint, ResponseCache(self.cache_path), api_key=read_api_key(self.endpoint))
        return ChatSession.open(chat, max_connections=max_connections)

    async def apredict(self, task, examples: list[Example], session: ChatSession) -> list[Generation]:
        """`predict` on a running event loop, through `session`: the same conversations, the same client."""
        conversations = [task.build_messages(example, few_shot=self.few_shot) for example in examples]
        outcomes = await asyncio.gather(*(session.complete(messages) for messages in conversations))
        return [self._generation(messages, outcome) for messages, outcome in zip(conversations, outcomes, strict=True)]

    def _generation(self, messages: list[dict], outcome: Outcome) -> Generation:
        reply = outcome.reply
        if reply is None:
            return Generation("", None, None, None, error=outcome.error, attempts=outcome.attempts)
        estimated = reply.input_tokens is None or reply.output_tokens is None
        input_tokens = reply.input_tokens
        if input_tokens is None:
            input_tokens = estimate_prompt_tokens(messages, self.count_tokens)
        output_tokens = reply.output_tokens if reply.output_tokens is not None else self.count_tokens(reply.content)
        return Generation(
            reply.content,
            reply.latency_ms,
            input_tokens,
            output_tokens,
            cost_usd=self.price.cost(input_tokens, output_tokens) if self.price else None,
            usage_estimated=estimated,
            cached=outcome.cached,
            attempts=outcome.attempts,
            token_logprobs=tuple(reply.token_logprobs) if reply.token_logprobs is not None else None,
        )


@dataclass
class PredictionsFileCandidate:
    """The LLM tier's logged answers, joined to the test split by id."""

    name: str
    model: str
    config: PredictionsFileConfig
    pricing: PricingConfig
    count_tokens: Callable[[str], int]
    info: dict = field(default_factory=dict)
    one_call: bool = True  # answers are read, not computed: no progress to save as it goes

    def predict(self, task, examples: list[Example]) -> list[Generation]:
        path, answers = load_logged_answers(self.config)
        test_ids = {example.id for example in examples}
        missing = [example.id for example in examples if example.id not in answers]
        unmatched = [key for key in answers if key not in test_ids]
        # Not logged here: the start-up check (baselines.tier.check_logged_answers) has said it for the test split.
        generations = [self._generation(task, example, answers.get(example.id)) for example in examples]
        self.info = {
            "kind": "predictions",
            "path": str(path),
            "rows_in_file": len(answers),
            "missing_ids": {"count": len(missing), "first": missing[:MAX_LISTED_IDS]},
            "unmatched_ids": {"count": len(unmatched), "first": unmatched[:MAX_LISTED_IDS]},
            "models": sorted({answer.model for answer in answers.values() if answer.model}),
        }
        return generations

    def _generation(self, task, example: Example, answer: LoggedAnswer | None) -> Generation:
        if answer is None:
            return Generation("", None, None, None, error="no answer for this id in the file", attempts=0)
        if answer.output is None:
            return Generation(
                "", answer.latency_ms, None, None, error=f"output is null (line {answer.line})", attempts=0
            )
        estimated = answer.input_tokens is None or answer.output_tokens is None
        input_tokens = answer.input_tokens
        if input_tokens is None:  # the production prompt is unknown: count the prompt this task would send
            input_tokens = estimate_prompt_tokens(task.build_messages(example, few_shot=[]), self.count_tokens)
        output_tokens = answer.output_tokens if answer.output_tokens is not None else self.count_tokens(answer.output)
        cost = answer.cost_usd
        if cost is None:
            price = find_price(answer.model or self.config.model, self.pricing)
            cost = price.cost(input_tokens, output_tokens) if price else None
        return Generation(
            answer.output,
            answer.latency_ms,
            input_tokens,
            output_tokens,
            cost_usd=cost,
            usage_estimated=estimated,
            cached=True,  # nothing is requested: the answer was paid for in production
            attempts=0,
        )


def _total(values) -> float:
    return round(sum(value for value in values if value is not None), 6)
