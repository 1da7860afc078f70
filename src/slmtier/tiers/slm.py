"""The SLM tier: a small generative model fine-tuned with LoRA (or QLoRA, DoRA, every weight) on the task's
own chat prompt, answering by label scoring (classification) or generation.

Run directory: adapter/ (the LoRA adapter, safetensors, with the tokenizer; model/ after trainer.finetune=full),
training.json (written last: its presence says the weights beside it are complete), trainer/ (checkpoints
while training).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from slmtier.benchmark.candidates import LocalCandidate
from slmtier.benchmark.cost import price_local
from slmtier.config import HardwareConfig, ModelConfig, RunConfig
from slmtier.data import Splits, load_splits
from slmtier.data.loading import sample
from slmtier.errors import RunDirError, SlmtierError
from slmtier.inference import derive_max_new_tokens
from slmtier.models import load_model, load_tokenizer, resolve_bf16, resolve_generate_bf16, resolve_model_path
from slmtier.models.loading import check_4bit_supported
from slmtier.run_dir import RunDir, write_json_atomic
from slmtier.tasks import build_task
from slmtier.tiers.prepared import Prepared
from slmtier.training import (
    TrainResult,
    build_sft_dataset,
    check_sampling_strategy,
    is_main_process,
    save_adapter,
    train_adapter,
)

log = logging.getLogger(__name__)

NAME = "slm"  # candidate name and predictions/slm.jsonl
FINETUNE_MODES = ("lora", "full")


def check(cfg: RunConfig) -> None:
    """Value checks the schema cannot express, run before any data or model is loaded."""
    if cfg.trainer.max_train_examples is not None and cfg.trainer.max_train_examples < 1:
        raise SlmtierError("trainer.max_train_examples must be at least 1 (null = the whole train split)")
    if cfg.trainer.finetune not in FINETUNE_MODES:
        raise SlmtierError(f"trainer.finetune {cfg.trainer.finetune!r} is not one of {list(FINETUNE_MODES)}")
    check_sampling_strategy("trainer.train_sampling_strategy", cfg.trainer.train_sampling_strategy)
    if cfg.trainer.finetune == "full" and cfg.lora.load_in_4bit:
        raise SlmtierError("trainer.finetune=full and lora=qlora exclude each other: 4-bit weights are not trained")
    if cfg.lora.load_in_4bit:
        check_4bit_supported()
    if cfg.inference.max_new_tokens is not None and cfg.inference.max_new_tokens < 1:
        raise SlmtierError("inference.max_new_tokens must be at least 1 (null = fitted to the task's answers)")


def check_base_model(cfg: RunConfig) -> None:
    """The base model can be found (its tokenizer loads, with a chat template): said in seconds, before the
    encoder tier trains for minutes."""
    load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)


def fit_generation_budget(cfg: RunConfig, task, splits: Splits) -> tuple[RunConfig, dict]:
    """How long an answer may run, once per run, for this tier, a local baseline and `slmtier serve` alike:
    inference.max_new_tokens as the recipe sets it, or when null fitted to the task (the longest train answer
    as the SLM is trained to write it, in its tokenizer's tokens, + margin: inference.derive_max_new_tokens).
    Returns cfg with that number in place, and metrics.json's `generation` record."""
    tokenizer = load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)
    fitted, longest = derive_max_new_tokens(tokenizer, [task.format_target(example.target) for example in splits.train])
    derived = cfg.inference.max_new_tokens is None
    budget = fitted if derived else cfg.inference.max_new_tokens
    if derived:
        log.info("inference.max_new_tokens: %d (the longest train answer is %d tokens; + margin)", budget, longest)
    elif budget <= longest:
        log.warning(
            "inference.max_new_tokens=%d is shorter than the longest train answer (%d tokens): answers that long "
            "will be cut (counted as hit_limit); null fits it to the task (%d)", budget, longest, fitted,
        )  # fmt: skip
    record = {"max_new_tokens": budget, "derived": derived, "longest_train_target_tokens": longest}
    return with_max_new_tokens(cfg, budget), record


def with_max_new_tokens(cfg: RunConfig, budget: int) -> RunConfig:
    return dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, max_new_tokens=budget))


def recorded_max_new_tokens(run_dir: Path, cfg: RunConfig) -> int:
    """The generation budget a run's benchmark answered with: inference.max_new_tokens as set, else the one
    fitted to the task and recorded in metrics.json (fitted again, the same way, if the run never got there)."""
    if cfg.inference.max_new_tokens is not None:
        return cfg.inference.max_new_tokens
    folder = RunDir(run_dir)
    if folder.metrics_file.is_file():
        return folder.read_metrics().generation["max_new_tokens"]
    task = build_task(cfg.task)
    return fit_generation_budget(cfg, task, load_splits(cfg.data, task.check_target))[1]["max_new_tokens"]


def load_base_model(cfg: RunConfig, model_cfg: ModelConfig | None = None):
    """(model, tokenizer) for the SLM's base model (4-bit with lora=qlora), or for `model_cfg` when given."""
    quantize = model_cfg is None and cfg.lora.load_in_4bit
    model_cfg = model_cfg or cfg.model
    path = resolve_model_path(model_cfg, cfg.cache_dir)
    return load_model(path, model_cfg, load_in_4bit=quantize), load_tokenizer(path, model_cfg)


def prepare(cfg: RunConfig, task, splits: Splits, run_dir: Path, *, base: Callable) -> Prepared:
    """The tier trained on the train split (or resumed, or loaded when an earlier attempt finished), as a
    candidate, with its block of metrics.json (`tiers.slm.training`). `base()` gives the loaded base model
    and tokenizer."""
    model, tokenizer = base()
    trained, result = train(cfg, task, splits, model, tokenizer, run_dir)
    entry = {
        "base_model": cfg.model.name,
        "source": cfg.model.source,
        "trust_remote_code": cfg.model.trust_remote_code,  # the report says so when on
        **asdict(result),
        "lora": asdict(cfg.lora),
        "trainer": asdict(cfg.trainer),
        "routing": {  # routing.yaml's `slm` block ({run_dir}, {task}: filled in when it is written)
            "base_model": cfg.model.source,
            trained_folder(cfg): "{run_dir}/" + trained_folder(cfg),
            "served_name": "{task}",
            "serve": "slmtier serve {run_dir}",
            # null: the router runs the SLM in its own process; {base_url, api_key_env}: a server that serves
            # this adapter as served_name (vLLM --enable-lora, slmtier serve), asked as load_remote says.
            "endpoint": None,
        },
    }
    return Prepared(build_candidate(cfg, trained, tokenizer), entry)


def build_candidate(cfg: RunConfig, model, tokenizer) -> LocalCandidate:
    how = "fully fine-tuned" if cfg.trainer.finetune == "full" else "+ LoRA"
    return LocalCandidate(NAME, f"{cfg.model.name} {how}", model, tokenizer, **local_settings(cfg),
                          chat_template_kwargs=cfg.model.chat_template_kwargs)  # fmt: skip


def load(run_dir: Path, cfg: RunConfig) -> LocalCandidate:
    """A finished run's SLM tier, answering as the benchmark did (same prompt, settings and parser)."""
    model, tokenizer = load_run_model(run_dir, cfg)
    return build_candidate(with_max_new_tokens(cfg, recorded_max_new_tokens(run_dir, cfg)), model, tokenizer)


def load_remote(run_dir: Path, cfg: RunConfig, served_name: str, endpoint: dict, **retry):
    """The run's SLM tier answered by a server that serves its adapter as `served_name` (`endpoint`:
    routing.yaml's {base_url, api_key_env}): the task's prompt without few-shot turns, greedy, the run's
    answer budget, and each answer token's log-probability asked for, so that its confidence is the quantity
    the benchmark computed. A run whose SLM scored the labels (inference.label_scoring) is refused: a chat
    endpoint generates, and generation is not what was measured."""
    from slmtier.baselines.candidates import EndpointCandidate
    from slmtier.config import EndpointConfig
    from slmtier.inference import count_tokens

    if build_task(cfg.task).kind == "classification" and cfg.inference.label_scoring:
        raise SlmtierError(
            f"{run_dir}: its SLM answered by scoring the labels (inference.label_scoring=true), which a chat "
            "endpoint cannot do; benchmark it with inference.label_scoring=false to serve it from a remote server"
        )
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("base_url"), str):
        raise SlmtierError(f"slm.endpoint is {{base_url: ..., api_key_env: ...}}, not {endpoint!r}")
    unknown = set(endpoint) - {"base_url", "api_key_env"}
    if unknown:
        raise SlmtierError(f"slm.endpoint: unknown key(s) {sorted(unknown)}; it takes base_url and api_key_env")
    settings = EndpointConfig(base_url=endpoint["base_url"], model=served_name,
                              api_key_env=endpoint.get("api_key_env"), temperature=0.0,
                              max_tokens=recorded_max_new_tokens(run_dir, cfg), logprobs=True, **retry)  # fmt: skip
    tokenizer = load_tokenizer(resolve_model_path(cfg.model, cfg.cache_dir), cfg.model)
    return EndpointCandidate(
        NAME,
        f"{cfg.model.name} + LoRA at {settings.base_url}",
        settings,
        cache_path=Path(":memory:"),
        price=None,  # fmt: skip
        count_tokens=lambda text: count_tokens(tokenizer, text),
    )  # nothing cached: cheap


def complete_entry(entry: dict, test_rows: list[dict]) -> dict:
    return entry


def price(hardware: HardwareConfig, measured_requests_per_s: float | None) -> dict:
    """USD per 1k requests on the hardware profile, at its declared throughput (hardware.requests_per_s)
    or the one this run measured."""
    return price_local(hardware, measured_requests_per_s)


def local_settings(cfg: RunConfig) -> dict:
    """How a local generative model answers (the SLM, and the default LLM tier on the same base model)."""
    return {
        "batch_size": cfg.inference.batch_size,
        "max_new_tokens": cfg.inference.max_new_tokens,
        "bf16": resolve_bf16(cfg.inference.bf16),
        "generate_bf16": resolve_generate_bf16(cfg.inference.generate_bf16),
        "constrained_json": cfg.inference.constrained_json,
        "label_scoring": cfg.inference.label_scoring,
    }


def train(cfg: RunConfig, task, splits: Splits, model, tokenizer, run_dir: Path):
    """LoRA fine-tuning on the train split; the adapter lands in run_dir/adapter (the model in run_dir/model
    after trainer.finetune=full) and the training summary in run_dir/training.json. (the trained model, TrainResult).

    Rerun in the same run directory: a finished training is loaded from those files instead of repeated, and
    an interrupted one resumes from its newest checkpoint in run_dir/trainer (trainer.save_steps)."""
    summary = run_dir / "training.json"
    if summary.is_file() and (run_dir / trained_folder(cfg)).is_dir():
        log.info("training finished in an earlier attempt: loading %s", run_dir / trained_folder(cfg))
        # The adapter goes on the base model already loaded; a fully fine-tuned model replaces it.
        trained, tokenizer = load_run_model(run_dir, cfg, base=None if cfg.trainer.finetune == "full" else model)
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
    """Where the trained weights go in the run directory: the adapter, or the whole model (trainer.finetune=full)."""
    return "model" if cfg.trainer.finetune == "full" else "adapter"


def load_run_model(run_dir: Path, run_cfg: RunConfig, *, base=None):
    """(PeftModel, tokenizer): the run's base model with its saved adapter (safetensors only); after full
    fine-tuning (run_dir/model), that model alone. `base`: the base model when already loaded."""
    from peft import PeftModel

    full = Path(run_dir) / "model"
    if full.is_dir():
        model_cfg = dataclasses.replace(run_cfg.model, source=str(full))
        return load_model(str(full), model_cfg), load_tokenizer(str(full), model_cfg)
    adapter_dir = Path(run_dir) / "adapter"
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise RunDirError(f"{adapter_dir}: no adapter_model.safetensors; did the run finish training?")
    if base is None:
        base = load_model(resolve_model_path(run_cfg.model, run_cfg.cache_dir), run_cfg.model)
    tokenizer = load_tokenizer(str(adapter_dir), run_cfg.model)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False), tokenizer
