"""The stages of one run, each a short call into the library, shared by the CLI and the tests."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import slmtier
from slmtier.baselines import EndpointCandidate, PredictionsFileCandidate
from slmtier.baselines.openai_compatible import (
    check_endpoint,
    check_key_variable,
    default_cache_path,
    read_api_key,
)
from slmtier.baselines.predictions_file import join_logged_answers
from slmtier.baselines.pricing import resolve_endpoint_price
from slmtier.benchmark.candidates import Candidate, LocalCandidate, run_candidate, select_few_shot
from slmtier.benchmark.extra_metrics import check_metric_paths
from slmtier.benchmark.summary import summarise_candidate
from slmtier.benchmark.verdict import assess
from slmtier.config import TIERS, ModelConfig, RunConfig
from slmtier.data import Splits, resolve_data_path
from slmtier.data.loading import sample
from slmtier.encoder import ENCODER, calibration_on_test, check_encoder_config, prepare_encoder
from slmtier.errors import SlmtierError
from slmtier.inference import count_tokens
from slmtier.models import load_model, load_tokenizer, resolve_bf16, resolve_model_path
from slmtier.models.loading import check_4bit_supported
from slmtier.run_dir import check_run_files, write_json_atomic
from slmtier.tasks.chat import count_truncated
from slmtier.training import TrainResult, build_sft_dataset, is_main_process, save_adapter, train_adapter

log = logging.getLogger(__name__)

SLM = "slm"  # candidate name of the fine-tuned model


def check_config(cfg: RunConfig) -> None:
    """Value checks the schema cannot express, run before any data or model is loaded."""
    unknown = sorted(set(cfg.tiers) - set(TIERS))
    if unknown or not cfg.tiers or len(set(cfg.tiers)) != len(cfg.tiers):
        raise SlmtierError(f"tiers {list(cfg.tiers)}: list one or more of {list(TIERS)}, each once")
    if ENCODER in cfg.tiers:
        check_encoder_config(cfg.encoder, cfg.task.kind)
    if cfg.trainer.max_train_examples is not None and cfg.trainer.max_train_examples < 1:
        raise SlmtierError("trainer.max_train_examples must be at least 1 (null = the whole train split)")
    if cfg.baseline.kind not in BASELINES:
        raise SlmtierError(f"baseline.kind {cfg.baseline.kind!r} is not one of {list(BASELINES)}")
    if cfg.baseline.name in TIERS:
        raise SlmtierError(f"baseline.name must differ from {list(TIERS)}, the local tiers' candidate names")
    if cfg.inference.constrained_json and cfg.task.kind != "extraction":
        raise SlmtierError("inference.constrained_json applies to extraction recipes only (JSON answers)")
    check_metric_paths(cfg.task.extra_metrics)
    if cfg.lora.full_finetune and cfg.lora.load_in_4bit:
        raise SlmtierError("lora.full_finetune and lora.load_in_4bit exclude each other: 4-bit weights are not trained")
    if cfg.lora.load_in_4bit:
        check_4bit_supported()
    if cfg.baseline.model.source and not cfg.baseline.model.name:
        raise SlmtierError("baseline.model.name is empty; name the baseline model (it labels the report)")
    check_baseline(cfg)


def check_resumable(config_yaml: str, run_dir: Path) -> dict | None:
    """What an existing run directory holds: None for a fresh one or an interrupted run of this same config
    (which then resumes: training from its checkpoint, predictions from their saved rows) or of a run that
    reached no verdict (`undecided`: the LLM is asked again); the metrics of a finished run (nothing to redo).
    A run directory holding another config is refused, not mixed."""
    existing = run_dir / "config.yaml"
    started = any(
        (run_dir / name).exists() for name in ("trainer", "training.json", "predictions", "encoder", "encoder_trainer")
    )
    if not existing.is_file() or not started:  # nothing done yet (a start-up that failed): start afresh
        return None
    if existing.read_text(encoding="utf-8") != config_yaml:
        raise SlmtierError(
            f"{run_dir} already holds a run with a different config; to resume it, rerun its own command "
            "(config.yaml there); for a new run choose another hydra.run.dir or remove that folder"
        )
    if not (run_dir / "metrics.json").is_file():
        return None
    check_run_files(run_dir)  # a finished run's files are whole (or the message says which is not)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    # No verdict (the LLM did not answer): a rerun asks the LLM again; the rest is kept.
    return None if metrics["decision"]["verdict"] == "undecided" else metrics


def check_logged_answers(cfg: RunConfig, splits: Splits) -> None:
    """baseline=predictions: the log joined to the test split before any training; gaps either way are
    counted and logged, and a log that answers none of the test ids is refused."""
    if cfg.baseline.kind == "predictions":
        join_logged_answers(cfg.baseline.predictions, [example.id for example in splits.test])


def check_base_model(cfg: RunConfig) -> None:
    """The SLM's base model can be found (its tokenizer loads, with a chat template): said in seconds, before
    the encoder tier trains for minutes."""
    load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)


def load_base_model(cfg: RunConfig, model_cfg: ModelConfig | None = None):
    """(model, tokenizer) for the SLM's base model (4-bit with lora=qlora), or for `model_cfg` when given."""
    quantize = model_cfg is None and cfg.lora.load_in_4bit
    if cfg.lora.full_finetune and cfg.lora.load_in_4bit:
        raise SlmtierError(
            "lora.full_finetune and lora.load_in_4bit exclude each other: 4-bit weights cannot be trained"
        )
    model_cfg = model_cfg or cfg.model
    path = resolve_model_path(model_cfg, cfg.cache_dir)
    return load_model(path, model_cfg, load_in_4bit=quantize), load_tokenizer(path, model_cfg)


def run_training(cfg: RunConfig, task, splits: Splits, model, tokenizer, run_dir: Path):
    """LoRA fine-tuning on the train split; the adapter lands in run_dir/adapter (the model in run_dir/model
    after lora=full) and the training summary in run_dir/training.json.

    Rerun in the same run directory: a finished training is loaded from those files instead of repeated, and
    an interrupted one resumes from its newest checkpoint in run_dir/trainer (trainer.save_steps)."""
    summary = run_dir / "training.json"
    if summary.is_file() and (run_dir / trained_folder(cfg)).is_dir():
        from slmtier.serve.engine import load_run_model

        log.info("training finished in an earlier attempt: loading %s", run_dir / trained_folder(cfg))
        # The adapter goes on the base model already loaded; a fully fine-tuned model replaces it.
        trained, tokenizer = load_run_model(run_dir, cfg, base=None if cfg.lora.full_finetune else model)
        return trained, TrainResult(**json.loads(summary.read_text()))
    peft_model, result = train_adapter(
        model,
        tokenizer,
        build_sft_dataset(
            task,
            sample(splits.train, cfg.trainer.max_train_examples, seed=cfg.data.sample_seed),
            chat_template_kwargs=cfg.model.chat_template_kwargs,
            cache_dir=Path(cfg.cache_dir).expanduser(),
        ),
        trainer_cfg=cfg.trainer,
        lora_cfg=cfg.lora,
        work_dir=run_dir / "trainer",
        report_to=cfg.tracking.report_to,
        model_targets=cfg.model.lora_target_modules,
    )
    if is_main_process():  # every rank trained its share of the data; one writes the adapter (or model)
        save_adapter(peft_model, tokenizer, run_dir / trained_folder(cfg))
        write_json_atomic(summary, asdict(result))  # last: its presence says the weights beside it are complete
        remove_checkpoints(run_dir / "trainer")
    return peft_model, result


def remove_checkpoints(work_dir: Path) -> None:
    """Once the final weights are saved: the checkpoints, and TRL's model card beside them (which names no
    base model), go; the folder too unless a tracker's curves are in it (tracking=tensorboard)."""
    for checkpoint in work_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    (work_dir / "README.md").unlink(missing_ok=True)
    if work_dir.is_dir() and not any(work_dir.iterdir()):
        work_dir.rmdir()


def trained_folder(cfg: RunConfig) -> str:
    """Where the trained weights go in the run directory: the adapter, or the whole model (lora=full)."""
    return "model" if cfg.lora.full_finetune else "adapter"


def build_candidates(cfg: RunConfig, task, splits: Splits, peft_model, tokenizer, encoder=None) -> list[Candidate]:
    """The local tiers in `tiers` (the encoder, prepared by `prepare_encoder`; the fine-tuned SLM), then the
    baseline (`baseline.kind`): by default the same base model, adapter off, prompted few-shot; or the LLM
    behind an OpenAI-compatible endpoint; or logged LLM answers."""
    candidates: list[Candidate] = [encoder] if encoder is not None else []
    if SLM in cfg.tiers:
        how = "fully fine-tuned" if cfg.lora.full_finetune else "+ LoRA"
        candidates.append(LocalCandidate(
            SLM, f"{cfg.model.name} {how}", peft_model, tokenizer, **_local_settings(cfg),
            chat_template_kwargs=cfg.model.chat_template_kwargs,
        ))  # fmt: skip
    return [*candidates, BASELINES[cfg.baseline.kind](cfg, splits, peft_model, tokenizer)]


def run_encoder(cfg: RunConfig, splits: Splits, run_dir: Path):
    """The encoder tier, trained (or loaded, or resumed) and calibrated; (candidate, metrics.json entry), or
    (None, None) when `tiers` does not list it."""
    if ENCODER not in cfg.tiers:
        return None, None
    return prepare_encoder(
        cfg.encoder, splits.train, splits.validation, list(cfg.task.labels), run_dir=run_dir,
        bf16=resolve_bf16(cfg.inference.bf16), report_to=cfg.tracking.report_to,
    )  # fmt: skip


def _local_settings(cfg: RunConfig) -> dict:
    return {
        "batch_size": cfg.inference.batch_size,
        "max_new_tokens": cfg.inference.max_new_tokens,
        "bf16": resolve_bf16(cfg.inference.bf16),
        "constrained_json": cfg.inference.constrained_json,
        "label_scoring": cfg.inference.label_scoring,
    }


def build_local_baseline(cfg: RunConfig, splits: Splits, peft_model, tokenizer) -> Candidate:
    base = cfg.baseline
    few_shot = select_few_shot(splits.train, base.few_shot_k, seed=base.seed)
    model_cfg = base.model if base.model.source else cfg.model
    if not base.model.source and SLM not in cfg.tiers:  # no SLM trained: the base model as loaded
        model, model_tokenizer, adapter_enabled = peft_model, tokenizer, True
    elif not base.model.source and not cfg.lora.full_finetune:  # the same weights with the adapter switched off
        model, model_tokenizer, adapter_enabled = peft_model, tokenizer, False
    else:  # another model, or a fresh copy of the base (full fine-tuning changed the trained one)
        (model, model_tokenizer), adapter_enabled = load_base_model(cfg, model_cfg), True
    return LocalCandidate(
        base.name,
        f"{model_cfg.name} ({base.few_shot_k}-shot, untuned)",
        model,
        model_tokenizer,
        few_shot,
        adapter_enabled=adapter_enabled,
        **_local_settings(cfg),
        chat_template_kwargs=model_cfg.chat_template_kwargs,
    )


def build_endpoint_baseline(cfg: RunConfig, splits: Splits, peft_model, tokenizer) -> Candidate:
    base, endpoint = cfg.baseline, cfg.baseline.endpoint
    return EndpointCandidate(
        base.name,
        f"{endpoint.model} ({base.few_shot_k}-shot)",
        endpoint,
        cache_path=default_cache_path(endpoint, cfg.cache_dir),
        price=resolve_endpoint_price(endpoint, cfg.pricing),
        count_tokens=_token_counter(tokenizer),
        few_shot=select_few_shot(splits.train, base.few_shot_k, seed=base.seed),
    )


def build_predictions_baseline(cfg: RunConfig, splits: Splits, peft_model, tokenizer) -> Candidate:
    base = cfg.baseline
    return PredictionsFileCandidate(
        base.name,
        f"{base.predictions.model} (logged answers)",
        base.predictions,
        cfg.pricing,
        _token_counter(tokenizer),
    )


def _token_counter(tokenizer):
    return functools.partial(count_tokens, tokenizer)


BASELINES = {
    "local": build_local_baseline,
    "openai_compatible": build_endpoint_baseline,
    "predictions": build_predictions_baseline,
}


def check_baseline(cfg: RunConfig) -> None:
    """The LLM tier's settings, checked before any training: key present, endpoint answering, file there."""
    base = cfg.baseline
    if base.kind == "openai_compatible":
        endpoint = base.endpoint
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
    elif base.kind == "predictions":
        if not base.predictions.path:
            raise SlmtierError("baseline.predictions.path is not set; point it at the JSONL file of logged answers")
        if not resolve_data_path(base.predictions.path).is_file():
            raise SlmtierError(f"{base.predictions.path}: predictions file not found; fix baseline.predictions.path")


@dataclass
class BenchmarkRun:
    results: dict[str, dict]  # candidate name -> its metrics.json entry (test split)
    test_rows: dict[str, list[dict]]
    validation_rows: dict[str, list[dict]]  # empty when the validation split was not predicted


def run_benchmark(
    task, candidates: list[Candidate], splits: Splits, predictions_dir: Path, *, extra_metrics=(), validation=False
) -> BenchmarkRun:
    """Predict the test split (and, for fitting the cascade and choosing models, the validation split)
    with every candidate."""
    run = BenchmarkRun({}, {}, {})
    for candidate in candidates:
        if validation and splits.validation:
            run.validation_rows[candidate.name], _ = run_candidate(
                candidate, task, splits.validation, predictions_dir, split="validation"
            )
        rows, timing = run_candidate(candidate, task, splits.test, predictions_dir)
        result = summarise_candidate(task, rows, model=candidate.model, extra_metrics=extra_metrics)
        result["source"] = candidate.info
        concurrency = getattr(candidate, "batch_size", None) or getattr(
            getattr(candidate, "endpoint", None), "max_concurrency", None
        )
        result["throughput"] = {"requests_per_s": timing.requests_per_s, "wall_s": timing.wall_s,
                                "rows_timed": timing.rows, "concurrency": concurrency}  # fmt: skip
        run.results[candidate.name], run.test_rows[candidate.name] = result, rows
        log.info("%s: %s = %.3f", candidate.name, task.metric, result["quality"]["value"])
    return run


def summarise_run(
    cfg: RunConfig,
    recipe: str,
    task,
    splits: Splits,
    training: TrainResult | None,
    run: BenchmarkRun,
    encoder: dict | None = None,
) -> dict:
    """metrics.json: what ran on what, the candidates' metrics, each tier's comparison with the LLM, cascade
    and costs, and the decision."""
    tiers = [tier for tier in TIERS if tier in cfg.tiers]  # cheapest kind first
    verdict = assess(
        task, run.results, run.test_rows, run.validation_rows,
        tiers=tiers, llm=cfg.baseline.name, policy=cfg.decision, hardware=cfg.hardware,
    )  # fmt: skip
    if encoder is not None:
        encoder["calibration"]["test"] = calibration_on_test(run.test_rows[ENCODER], encoder["calibration"]["bins"])
    paths = {"train": cfg.data.train, "validation": cfg.data.validation, "test": cfg.data.test}
    limit = cfg.task.max_input_words
    return {
        "recipe": recipe,
        "task_kind": task.kind,
        "primary_metric": task.metric,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "slmtier_version": slmtier.__version__,
        "data": {
            split: {
                "path": str(resolve_data_path(path)) if path else None,
                "n": len(getattr(splits, split)),
                "truncated_inputs": count_truncated([e.input for e in getattr(splits, split)], limit),
            }
            for split, path in paths.items()
        },
        "training": None
        if training is None
        else {
            "base_model": cfg.model.name,
            "source": cfg.model.source,
            "trust_remote_code": cfg.model.trust_remote_code,  # the report says so when on
            **asdict(training),
            "lora": asdict(cfg.lora),
            "trainer": asdict(cfg.trainer),
        },
        "encoder": encoder,
        "candidates": run.results,
        "hardware": asdict(cfg.hardware),
        **verdict,
    }
