"""Teacher labels: the LLM tier answers the train and validation inputs, and its parsed answers become the
targets the local tiers learn from (`data.train_targets=llm`: distillation).

The teacher is the LLM tier exactly as the benchmark asks it (prompt, few-shot turns, request settings, parser),
so the students learn what the benchmark then compares them with. Its answers go through the response cache:
a killed labelling resumes where it stopped and pays for no answer twice. Before any call the cost of the
answers not yet cached is estimated and logged; with `data.teacher_max_usd` the labelling is refused when the
estimate is over the cap, and stops before a batch whose dearest case (every answer `max_tokens` long) could
take the spend past it. An answer the parser cannot read, and a request that failed after its retries, drop
their example and are counted: the data card (metrics.json `targets`) says how many and why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from slmtier.baselines.cache import ResponseCache, build_cache_key
from slmtier.baselines.candidates import EndpointCandidate, estimate_prompt_tokens
from slmtier.baselines.openai_compatible import build_request_params
from slmtier.candidate import answer
from slmtier.config import RunConfig
from slmtier.data import Example, Splits
from slmtier.errors import SlmtierError
from slmtier.models import load_tokenizer, resolve_model_path
from slmtier.tasks import plain_answer

log = logging.getLogger(__name__)

# Answers asked per step of an endpoint's labelling: each step is checked against the cap before it is sent.
STEP_PER_CONNECTION = 4


class BudgetReached(SlmtierError):
    """The labelling stopped before a batch that could take the spend past data.teacher_max_usd."""


def needs_teacher(cfg: RunConfig) -> bool:
    return cfg.data.train_targets == "llm"


def check_shots(cfg: RunConfig, splits: Splits) -> Splits:
    """The splits with their few-shot pool set: with LLM-taught targets, the train rows that carry gold (the
    LLM is shown gold answers); too few of them for baseline.few_shot_k is a start-up error."""
    gold = [example for example in splits.train if example.target is not None]
    k = cfg.baseline.few_shot_k if cfg.baseline.kind != "predictions" else 0
    if k > len(gold):
        raise SlmtierError(
            f"data.train_targets=llm: baseline.few_shot_k={k} few-shot turns need as many train rows with a gold "
            f"answer, and {len(gold)} have one; set baseline.few_shot_k={len(gold)} (0: the LLM is asked "
            "zero-shot, as production prompts usually are) or add gold answers to some train rows"
        )
    return dataclasses.replace(splits, shots=gold)


def build_teacher(cfg: RunConfig, splits: Splits):
    """The LLM tier as the benchmark builds it: an endpoint or a log (the local stand-in is refused at start-up,
    slmtier.preflight), which needs only the SLM's tokenizer, to count tokens."""
    from slmtier.baselines.tier import build_llm_tier

    tokenizer = load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)
    return build_llm_tier(cfg, splits, None, tokenizer)


def teach(cfg: RunConfig, task, splits: Splits, teacher) -> tuple[Splits, dict]:
    """The splits with the teacher's parsed answers as train and validation targets (examples it could not
    answer dropped), and the data card."""
    examples = splits.train + splits.validation
    card = {"source": "llm", "teacher": teacher.name, "model": teacher.model, "asked": len(examples)}
    if isinstance(teacher, EndpointCandidate):
        pending = uncached(teacher, task, examples)
        card |= plan_cost(cfg, task, teacher, examples, pending)
        answers = ask_within_budget(cfg, task, teacher, examples, pending, card)
    else:  # logged answers: what they cost was paid in production, not by this run
        answers = answer(teacher, task, examples)
        card |= {"spent_usd": 0.0, "logged_usd": round(_spent(answers), 6)}
    # By position, not id: a train and a validation file may both number their rows 1, 2, ...
    targets, dropped, gold_pairs = [], Counter(), []
    failed = "request failed" if isinstance(teacher, EndpointCandidate) else "no answer (not logged)"
    for example, reply in zip(examples, answers, strict=True):
        target = None
        if reply.generation.error:
            dropped[failed] += 1
        elif reply.parsed is None:
            dropped["unparseable answer"] += 1
        else:
            target = plain_answer(reply.parsed)
            if example.target is not None:
                gold_pairs.append(task.score_example(reply.parsed, example.target))
        targets.append(target)

    def keep(part: list[Example], part_targets: list) -> list[Example]:
        return [dataclasses.replace(e, target=t) for e, t in zip(part, part_targets, strict=True) if t is not None]

    cut = len(splits.train)
    train, validation = keep(splits.train, targets[:cut]), keep(splits.validation, targets[cut:])
    taught = train + validation
    card |= {
        "labelled": len(taught),
        "dropped": dict(dropped),
        "train": len(train),
        "validation": len(validation),
        # Where rows also carried gold: how often the teacher matched it (its quality as a teacher, in sample).
        "gold_rows": len(gold_pairs),
        "agreement_with_gold": sum(gold_pairs) / len(gold_pairs) if gold_pairs else None,
    }
    if not train:
        raise SlmtierError(
            f"the LLM tier ({teacher.model}) gave no usable answer for any of the {len(splits.train)} train inputs "
            f"({', '.join(f'{n} {why}' for why, n in dropped.items())}): nothing to train on; check its endpoint "
            "and prompt with a few examples first"
        )
    log.info("teacher labels from %s: %d of %d inputs labelled, dropped: %s, spent %s USD", teacher.model,
             len(taught), len(examples), dict(dropped) or "none", card.get("spent_usd"))  # fmt: skip
    return dataclasses.replace(splits, train=train, validation=validation), card


def plan_cost(cfg: RunConfig, task, teacher: EndpointCandidate, examples: list[Example],
              pending: dict[int, list[dict]]) -> dict:  # fmt: skip
    """The answers not yet in the response cache, and what they should cost (answers as long as the task's
    usual answer) and at most (every answer max_tokens long); refused up front when the estimate exceeds the
    cap. `pending`: the uncached conversations by position (`uncached`). Token counts come from the SLM's
    tokenizer: another model's tokenizer counts a little differently."""
    card = {"cached": len(examples) - len(pending), "price": teacher.price.to_dict() if teacher.price else None}
    if teacher.price is None:
        if cfg.data.teacher_max_usd is not None:
            raise SlmtierError(
                f"data.teacher_max_usd={cfg.data.teacher_max_usd} needs the LLM tier's price, and "
                f"{teacher.endpoint.model!r} has none: set baseline.endpoint.price_model or price_input_per_1m "
                "and price_output_per_1m"
            )
        log.info("teacher labels: %d of %d answers to ask (no price known: cost not estimated)", len(pending),
                 len(examples))  # fmt: skip
        return card | {"estimated_usd": None, "most_usd": None}
    usual = usual_answer_tokens(task, examples, teacher)
    inputs = [estimate_prompt_tokens(messages, teacher.count_tokens) for messages in pending.values()]
    estimated = sum(teacher.price.cost(n, usual) for n in inputs)
    most = sum(teacher.price.cost(n, teacher.endpoint.max_tokens) for n in inputs)
    cap = cfg.data.teacher_max_usd
    log.info("teacher labels: %d of %d answers to ask, estimated %.4f USD (at most %.4f), cap %s", len(pending),
             len(examples), estimated, most, "none" if cap is None else f"{cap:.4f} USD")  # fmt: skip
    if cap is not None and estimated > cap:
        raise SlmtierError(
            f"labelling {len(pending)} train and validation inputs with {teacher.endpoint.model} is estimated at "
            f"{estimated:.4f} USD, over data.teacher_max_usd={cap}: raise the cap, or label fewer rows "
            "(data.max_train_examples); nothing was asked"
        )
    return card | {"estimated_usd": round(estimated, 6), "most_usd": round(most, 6), "max_usd": cap}


def ask_within_budget(cfg: RunConfig, task, teacher: EndpointCandidate, examples: list[Example],
                      pending: dict[int, list[dict]], card: dict) -> list:  # fmt: skip
    """The teacher's answers, a step at a time; before each step the spend so far plus the step's dearest case
    is checked against the cap. Cached answers cost nothing and are taken whatever the cap."""
    cap, price = cfg.data.teacher_max_usd, teacher.price
    step = max(1, teacher.endpoint.max_concurrency * STEP_PER_CONNECTION)
    answers, spent = [], 0.0
    for start in range(0, len(examples), step):
        chunk = examples[start : start + step]
        asking = [index for index in range(start, start + len(chunk)) if index in pending]
        if cap is not None and asking:
            dearest = sum(price.cost(estimate_prompt_tokens(pending[index], teacher.count_tokens),
                                     teacher.endpoint.max_tokens) for index in asking)  # fmt: skip
            if spent + dearest > cap:
                raise BudgetReached(
                    f"the teacher labelling stopped at {start} of {len(examples)} inputs: {spent:.4f} USD spent, and "
                    f"the next {len(asking)} answers could cost up to {dearest:.4f} USD more, past "
                    f"data.teacher_max_usd={cap}. The answers so far are cached: rerun with a higher cap and they "
                    "are not paid for again"
                )
        replies = answer(teacher, task, chunk)
        spent += _spent(replies)
        answers += replies
    card["spent_usd"] = round(spent, 6)
    return answers


def uncached(teacher: EndpointCandidate, task, examples: list[Example]) -> dict[int, list[dict]]:
    """position -> conversation, for the examples whose answer the response cache does not hold (by position:
    ids are unique within a split only)."""
    params = build_request_params(teacher.endpoint)
    cache = ResponseCache(teacher.cache_path)
    try:
        pending = {}
        for index, example in enumerate(examples):
            messages = task.build_messages(example, few_shot=teacher.few_shot)
            key = build_cache_key(teacher.endpoint.base_url, teacher.endpoint.model, messages, params)
            if cache.get(key) is None:
                pending[index] = messages
        return pending
    finally:
        cache.close()


def usual_answer_tokens(task, examples: list[Example], teacher: EndpointCandidate) -> int:
    """Tokens of a usual answer: the longest label; else the mean of the gold answers rows carry; else half
    of max_tokens."""
    labels = getattr(task, "labels", None)
    if labels:
        return max(teacher.count_tokens(task.format_target(label)) for label in labels) + 1
    gold = [teacher.count_tokens(task.format_target(e.target)) for e in examples if e.target is not None]
    return round(sum(gold) / len(gold)) + 1 if gold else teacher.endpoint.max_tokens // 2


def _spent(answers) -> float:
    return sum(a.generation.cost_usd or 0.0 for a in answers if not a.generation.cached)
