"""The LLM tier the local tiers are measured against: its kinds (a registry of builders), its start-up checks,
and its candidate. `baseline.kind`: `local` (by default the SLM's own base model, untuned, prompted few-shot:
a stand-in when no LLM is at hand), `openai_compatible` (the LLM behind an endpoint), `predictions` (the LLM's
logged answers)."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path

from slmtier.baselines.candidates import EndpointCandidate, PredictionsFileCandidate
from slmtier.baselines.openai_compatible import check_endpoint, check_key_variable, default_cache_path, read_api_key
from slmtier.baselines.predictions_file import join_logged_answers
from slmtier.baselines.pricing import resolve_endpoint_price
from slmtier.benchmark.candidates import LocalCandidate, select_few_shot
from slmtier.candidate import Candidate
from slmtier.config import RunConfig
from slmtier.data import Example, Splits, resolve_data_path
from slmtier.errors import RunDirError, SlmtierError
from slmtier.inference import count_tokens
from slmtier.run_dir import write_json_atomic
from slmtier.tiers import slm

log = logging.getLogger(__name__)


def build_local(cfg: RunConfig, splits: Splits, model, tokenizer) -> Candidate:
    """`model`: the SLM's model when that tier trained (its adapter is switched off here), else the base."""
    base = cfg.baseline
    few_shot = select_few_shot(splits.few_shot_pool, base.few_shot_k, seed=base.seed)
    model_cfg = base.model if base.model.source else cfg.model
    if not base.model.source and slm.NAME not in cfg.tiers:  # no SLM trained: the base model as loaded
        adapter_enabled = True
    elif not base.model.source and cfg.trainer.finetune == "lora":  # the same weights with the adapter switched off
        adapter_enabled = False
    else:  # another model, or a fresh copy of the base (full fine-tuning changed the trained one)
        (model, tokenizer), adapter_enabled = slm.load_base_model(cfg, model_cfg), True
    return LocalCandidate(
        base.name,
        f"{model_cfg.name} ({base.few_shot_k}-shot, untuned)",
        model,
        tokenizer,
        few_shot,
        adapter_enabled=adapter_enabled,
        **slm.local_settings(cfg),
        chat_template_kwargs=model_cfg.chat_template_kwargs,
    )


def build_endpoint(cfg: RunConfig, splits: Splits, model, tokenizer) -> Candidate:
    few_shot = select_few_shot(splits.few_shot_pool, cfg.baseline.few_shot_k, seed=cfg.baseline.seed)
    return endpoint_candidate(cfg, few_shot, tokenizer)


def endpoint_candidate(cfg: RunConfig, few_shot: list[Example], tokenizer) -> EndpointCandidate:
    base, endpoint = cfg.baseline, cfg.baseline.endpoint
    return EndpointCandidate(
        base.name,
        f"{endpoint.model} ({base.few_shot_k}-shot)",
        endpoint,
        cache_path=default_cache_path(endpoint, cfg.cache_dir),
        price=resolve_endpoint_price(endpoint, cfg.pricing),
        count_tokens=functools.partial(count_tokens, tokenizer),
        few_shot=few_shot,
    )


def build_predictions(cfg: RunConfig, splits: Splits, model, tokenizer) -> Candidate:
    base = cfg.baseline
    return PredictionsFileCandidate(
        base.name,
        f"{base.predictions.model} (logged answers)",
        base.predictions,
        cfg.pricing,
        functools.partial(count_tokens, tokenizer),
    )


BASELINES = {"local": build_local, "openai_compatible": build_endpoint, "predictions": build_predictions}
BASELINE_WORDS = {"local": "a local stand-in", "openai_compatible": "an endpoint", "predictions": "logged answers"}
LLM_TIER_FILE = "llm_tier.json"


def build_llm_tier(cfg: RunConfig, splits: Splits, model, tokenizer) -> Candidate:
    """The LLM tier's candidate; `model`, `tokenizer`: the SLM's (token counts; the local kind's weights)."""
    return BASELINES[cfg.baseline.kind](cfg, splits, model, tokenizer)


def check_llm_tier(cfg: RunConfig) -> None:
    """The LLM tier's settings, checked before any training: key present, endpoint answering, file there."""
    base = cfg.baseline
    if base.kind not in BASELINES:
        raise SlmtierError(f"baseline.kind {base.kind!r} is not one of {list(BASELINES)}")
    if base.model.source and not base.model.name:
        raise SlmtierError("baseline.model.name is empty; name the baseline model (it labels the report)")
    if base.kind == "openai_compatible":
        _check_endpoint(cfg)
    elif base.kind == "predictions":
        if not base.predictions.path:
            raise SlmtierError("baseline.predictions.path is not set; point it at the JSONL file of logged answers")
        if not resolve_data_path(base.predictions.path).is_file():
            raise SlmtierError(f"{base.predictions.path}: predictions file not found; fix baseline.predictions.path")


def _check_endpoint(cfg: RunConfig) -> None:
    endpoint = cfg.baseline.endpoint
    check_key_variable(endpoint)
    if (endpoint.price_input_per_1m is None) != (endpoint.price_output_per_1m is None):
        raise SlmtierError("set both baseline.endpoint.price_input_per_1m and price_output_per_1m, or neither")
    if endpoint.max_concurrency < 1 or endpoint.max_retries < 0 or endpoint.timeout_s <= 0:
        raise SlmtierError("baseline.endpoint needs max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
    read_api_key(endpoint)
    if endpoint.check_at_start:
        check_endpoint(endpoint)
    if resolve_endpoint_price(endpoint, cfg.pricing) is None:
        log.warning(
            "no price for %r in the price table (pricing, as of %s): costs will not be reported; "
            "set baseline.endpoint.price_model or price_input_per_1m/price_output_per_1m",
            endpoint.price_model or endpoint.model,
            cfg.pricing.as_of,
        )


def check_logged_answers(cfg: RunConfig, splits: Splits) -> None:
    """baseline=predictions: the log joined to the test split before any training; gaps either way are
    counted and logged, and a log that answers none of the test ids is refused."""
    if cfg.baseline.kind == "predictions":
        join_logged_answers(cfg.baseline.predictions, [example.id for example in splits.test])


def record_llm_tier(cfg: RunConfig, splits: Splits, run_dir: Path) -> Path:
    """run_dir/llm_tier.json: what it takes to ask the LLM tier again as the benchmark asked it (its kind and
    its few-shot turns, drawn from the train split), so that a router can without the data."""
    few_shot = select_few_shot(splits.few_shot_pool, cfg.baseline.few_shot_k, seed=cfg.baseline.seed)
    record = {"kind": cfg.baseline.kind, "few_shot": [dataclasses.asdict(example) for example in few_shot]}
    return write_json_atomic(Path(run_dir) / LLM_TIER_FILE, record)


def load_llm_tier(run_dir: Path, cfg: RunConfig, tokenizer, **retry) -> EndpointCandidate:
    """The run's LLM tier, asking its endpoint exactly as the benchmark did (prompt, few-shot turns, request
    settings, the response cache). Only an endpoint can answer new requests: a local stand-in is no LLM to
    escalate to, and logged answers cover only the requests they logged. `retry`: endpoint fields that say
    how long to wait and how often to retry (timeout_s, max_retries, ...), which a request path needs
    tighter than a benchmark; what is asked is unchanged."""
    if cfg.baseline.kind != "openai_compatible":
        raise SlmtierError(
            f"{run_dir}: its LLM tier is {cfg.baseline.kind!r} ({BASELINE_WORDS[cfg.baseline.kind]}), which cannot "
            "answer new requests: benchmark against your LLM's endpoint (baseline=openai_compatible) to route to it"
        )
    path = Path(run_dir) / LLM_TIER_FILE
    if not path.is_file():
        raise RunDirError(f"{path}: missing; the run finished before its LLM tier was recorded: rerun it")
    record = json.loads(path.read_text(encoding="utf-8"))
    if retry:
        endpoint = dataclasses.replace(cfg.baseline.endpoint, **retry)
        cfg = dataclasses.replace(cfg, baseline=dataclasses.replace(cfg.baseline, endpoint=endpoint))
    return endpoint_candidate(cfg, [Example(**example) for example in record["few_shot"]], tokenizer)
