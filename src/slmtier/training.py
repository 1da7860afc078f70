"""LoRA fine-tuning with trl.SFTTrainer on the task's own chat prompt, loss on the answer only.

The training rows are conversational prompt-completion pairs built by the task, so the model is
trained on exactly the prompt it is benchmarked with. TRL applies the chat template and masks the
prompt out of the loss (`completion_only_loss`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, load_from_disk
from safetensors import SafetensorError, safe_open

from slmtier.config import LoraConfig, TrainerConfig
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.models import resolve_bf16

log = logging.getLogger(__name__)

# The order the Trainer draws training examples in (TrainingArguments.train_sampling_strategy): random, batches of
# similar length (fewer padding tokens), or the file's order.
SAMPLING_STRATEGIES = ("random", "group_by_length", "sequential")


def check_sampling_strategy(key: str, value: str) -> None:
    if value not in SAMPLING_STRATEGIES:
        raise SlmtierError(f"{key} {value!r} is not one of {list(SAMPLING_STRATEGIES)}")


@dataclass(frozen=True)
class TrainResult:
    train_loss: float
    runtime_s: float
    steps: int
    examples: int
    tokens: int  # non-padding tokens processed (prompt and answer)
    tokens_per_s: float
    truncated_examples: int  # examples longer than trainer.max_length, cut at the end before training
    world_size: int = 1  # processes that trained together (torchrun / accelerate launch: data-parallel)
    resumed_from_step: int | None = None  # the checkpoint this run carried on from, after a crash or kill
    bf16: bool | None = None  # trained under bf16 autocast (trainer.bf16, or what null resolved to here)


def build_sft_dataset(
    task, examples: list[Example], *, chat_template_kwargs: dict | None = None, cache_dir: Path | None = None
) -> Dataset:
    """Conversational prompt-completion rows: the task's messages, then the gold answer as assistant turn.
    `chat_template_kwargs` (a model quirk such as Qwen3's enable_thinking) rides along in every row, where
    TRL passes it to the chat template.

    With `cache_dir`, the rows are stored there once (named by their content) and read back from disk, so
    `datasets` caches every later `map` over them, TRL's tokenisation included: a rerun or the next trial
    of a sweep on the same data and tokenizer loads the tokens instead of computing them again (banking77,
    10k rows: 26 s -> 0.1 s on the 2-core CPU)."""
    extra = {"chat_template_kwargs": dict(chat_template_kwargs)} if chat_template_kwargs else {}
    rows = [
        {
            "prompt": task.build_messages(example),
            "completion": [{"role": "assistant", "content": task.format_target(example.target)}],
            **extra,
        }
        for example in examples
    ]
    if cache_dir is None:
        return Dataset.from_list(rows)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]
    folder = Path(cache_dir) / "sft_datasets" / digest
    if not folder.is_dir():
        partial = folder.with_name(f"{digest}.partial-{os.getpid()}")
        Dataset.from_list(rows).save_to_disk(str(partial))
        try:
            partial.rename(folder)
        except OSError:  # another process stored the same rows first
            shutil.rmtree(partial, ignore_errors=True)
    return load_from_disk(str(folder))


def count_too_long(tokenizer, dataset: Dataset, max_length: int) -> int:
    """Examples whose chat-formatted prompt + answer exceed max_length tokens (TRL cuts them silently).
    A batched `map`, so a disk-backed dataset (build_sft_dataset's cache_dir) keeps the counts too."""

    def count_tokens(batch: dict) -> dict:
        kwargs = batch.get("chat_template_kwargs") or [{}] * len(batch["prompt"])
        texts = [
            tokenizer.apply_chat_template(prompt + completion, tokenize=False, **(extra or {}))
            for prompt, completion, extra in zip(batch["prompt"], batch["completion"], kwargs, strict=True)
        ]
        return {"n_tokens": [len(ids) for ids in tokenizer(texts, add_special_tokens=False).input_ids]}

    lengths = dataset.map(count_tokens, batched=True, remove_columns=dataset.column_names, desc="Counting tokens")[
        "n_tokens"
    ]
    return sum(n > max_length for n in lengths)


def resolve_target_modules(cfg: LoraConfig, model_targets: list[str]) -> str | list[str]:
    """lora.target_modules, else the model's own list, else every linear layer. "all-linear" is peft's
    own shorthand (every linear layer except the output head) and must be passed as a string."""
    targets = list(cfg.target_modules) if cfg.target_modules is not None else list(model_targets)
    return "all-linear" if targets in ([], ["all-linear"]) else targets


def build_peft_config(cfg: LoraConfig, model_targets: list[str] = ()):
    from peft import LoraConfig as PeftLoraConfig

    targets = resolve_target_modules(cfg, list(model_targets))
    return PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        use_dora=cfg.use_dora,
        task_type="CAUSAL_LM",
    )


def build_sft_config(cfg: TrainerConfig, *, output_dir: Path, report_to: list[str]):
    from trl import SFTConfig

    return SFTConfig(
        **trainer_arguments(cfg, output_dir=output_dir, report_to=report_to),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing,
        train_sampling_strategy=cfg.train_sampling_strategy,
        completion_only_loss=True,
        include_num_input_tokens_seen="non_padding",
    )


def trainer_arguments(cfg, *, output_dir: Path, report_to: list[str]) -> dict:
    """The transformers.TrainingArguments both tiers set alike, from a config with the same field names
    (TrainerConfig for the SLM, EncoderConfig for the encoder): schedule, precision, device, checkpoints."""
    return {
        "output_dir": str(output_dir),
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps,
        "weight_decay": cfg.weight_decay,
        "bf16": resolve_bf16(cfg.bf16),
        # transformers refuses bf16 without an accelerator unless told the CPU is meant.
        "use_cpu": not (torch.cuda.is_available() or torch.backends.mps.is_available()),
        "logging_steps": cfg.logging_steps,
        "seed": cfg.seed,
        "save_strategy": "steps" if cfg.save_steps > 0 else "no",
        "save_steps": max(cfg.save_steps, 1),  # read only with save_strategy="steps"
        "save_total_limit": 2,  # the newest may be cut short by a kill; the one before it is then used
        "report_to": list(report_to) or "none",
    }


def train_adapter(
    model,
    tokenizer,
    train_dataset: Dataset,
    *,
    trainer_cfg: TrainerConfig,
    lora_cfg: LoraConfig,
    work_dir: Path,
    report_to: list[str] = (),
    model_targets: list[str] = (),
    callbacks: list = (),
):
    """Attach LoRA, train, and return (the PEFT model, TrainResult). The base weights stay frozen.
    `model_targets`: the base model's own LoRA target modules (used when lora.target_modules is null);
    `callbacks`: extra transformers TrainerCallbacks (a benchmark's timer, a notebook's progress)."""
    from trl import SFTTrainer

    truncated = count_too_long(tokenizer, train_dataset, trainer_cfg.max_length)
    # The answer comes last, so cutting an example at max_length cuts its answer: TRL then drops it.
    if truncated == len(train_dataset):
        raise SlmtierError(
            f"all {truncated} training examples are longer than trainer.max_length={trainer_cfg.max_length} tokens "
            "(prompt, input and answer), so no answer would be trained on; raise trainer.max_length "
            "or shorten task.instruction / set task.max_input_words"
        )
    if truncated:
        log.warning(
            "%d of %d training examples exceed trainer.max_length=%d tokens and are cut; their answers may be lost",
            truncated,
            len(train_dataset),
            trainer_cfg.max_length,
        )
    original_attention = model.config._attn_implementation
    attention = resolve_attn_implementation(trainer_cfg, model.device)
    if attention:
        model.set_attn_implementation(attention)
    trainer = SFTTrainer(
        model=model,
        args=build_sft_config(trainer_cfg, output_dir=work_dir, report_to=list(report_to)),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=None if trainer_cfg.finetune == "full" else build_peft_config(lora_cfg, model_targets),
        callbacks=list(callbacks) or None,
    )
    checkpoint = find_last_checkpoint(work_dir)
    # Read before training: the Trainer's rotation (save_total_limit) may delete this checkpoint on the way.
    before = read_trainer_state(checkpoint) if checkpoint else {}
    if checkpoint is not None:
        log.info("resuming training from %s", checkpoint)
    with score_answer_positions_only():
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if attention:  # prediction and serving keep the model's default kernel (sdpa generated faster here)
        trainer.model.set_attn_implementation(original_attention)
    tokens = int(trainer.state.num_input_tokens_seen)
    runtime = float(output.metrics["train_runtime"])
    # Speed counts only what this process trained; the checkpoint's tokens were trained before the kill.
    result = TrainResult(
        train_loss=float(output.training_loss),
        runtime_s=runtime,
        steps=int(trainer.state.global_step),
        examples=len(train_dataset),
        tokens=tokens,
        tokens_per_s=(tokens - int(before.get("num_input_tokens_seen", 0))) / runtime if runtime else 0.0,
        truncated_examples=truncated,
        world_size=int(trainer.args.world_size),
        resumed_from_step=before.get("global_step"),
        bf16=bool(trainer.args.bf16),
    )
    log.info(
        "trained %d steps in %.0f s: loss %.3f, %.0f tokens/s",
        result.steps,
        runtime,
        result.train_loss,
        result.tokens_per_s,
    )
    return trainer.model, result


def find_last_checkpoint(work_dir: Path) -> Path | None:
    """The newest Trainer checkpoint in work_dir that training can resume from, or None (train afresh).

    Passed over, and removed so that neither the resume nor the Trainer's rotation of old checkpoints counts
    them, with a warning that says so:
    - a checkpoint cut short by a kill (the Trainer writes trainer_state.json last, so it has none) or damaged
      (a file cut short or overwritten: `checkpoint_damage` names it);
    - a checkpoint of the last step: resumed from, the Trainer trains one step past max_steps (5 steps for
      max_steps=4), so the run resumes from the one before it and ends where an uninterrupted run ends."""
    folders = [f for f in Path(work_dir).glob("checkpoint-*") if f.name.removeprefix("checkpoint-").isdigit()]
    for folder in sorted(folders, key=lambda f: int(f.name.removeprefix("checkpoint-")), reverse=True):
        damage = checkpoint_damage(folder)
        if damage is None:
            state = read_trainer_state(folder)
            if state["global_step"] < state.get("max_steps", math.inf):
                return folder
            damage = "it holds the last step; resuming from it would train past max_steps"
        log.warning("not resuming from %s (%s): removed", folder, damage)
        shutil.rmtree(folder, ignore_errors=True)
    if folders:
        log.warning("no checkpoint in %s can be resumed from: the training starts afresh", work_dir)
    return None


def read_trainer_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))


def checkpoint_damage(folder: Path) -> str | None:
    """What makes a checkpoint unusable, or None: a missing or unreadable trainer_state.json, JSON that does
    not parse, a safetensors file cut short, a torch file (optimizer, scheduler, RNG state) that is not a
    whole zip archive. Reads each file once; loads no tensors."""
    if not (folder / "trainer_state.json").is_file():
        return "cut short: no trainer_state.json"
    for path in sorted(folder.iterdir()):
        problem = _file_damage(path)
        if problem:
            return f"{path.name}: {problem}"
    state = read_trainer_state(folder)
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "trainer_state.json: no global_step"
    return None


def _file_damage(path: Path) -> str | None:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt"):
                pass
        elif path.suffix in (".pt", ".pth", ".bin"):  # torch.save's zip format
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"{bad} fails its checksum"
    except (ValueError, OSError, UnicodeDecodeError, zipfile.BadZipFile, SafetensorError) as err:
        return f"unreadable ({type(err).__name__}: {str(err)[:120]})"
    return None


def resolve_attn_implementation(cfg: TrainerConfig, device: torch.device) -> str | None:
    """trainer.attn_implementation, or (null) eager attention for CPU training of short examples: on the 2-core
    CPU, sdpa's CPU flash-attention backward took ~20% of a step on ~100-token batches and eager trained
    1.3x faster (scripts/bench.py). Eager keeps a (length x length) matrix per head for the backward pass, so
    long examples keep sdpa. None = leave the model's own choice."""
    if cfg.attn_implementation is not None:
        return cfg.attn_implementation
    return "eager" if device.type == "cpu" and cfg.max_length <= 1024 else None


@contextlib.contextmanager
def score_answer_positions_only():
    """Project only the answer positions through the LM head, on every device.

    TRL's fused LM head computes the loss without materialising the (batch, length, vocabulary) logits. On
    CUDA/XPU it projects only the positions that carry a label (the answer: prompt tokens are masked); on
    other devices it projects every position, to keep tile shapes fixed for compilers that recompile on a new
    shape. Eager CPU execution does not recompile, and a classification answer is ~5 of ~100 tokens, so
    projecting every position through SmolLM2's 49k-word head spent ~40% of each CPU step on logits the loss
    never reads. The loss, gradients and logged metrics are the same either way (only masked positions
    are skipped); training ran 1.8x faster. If a TRL release moves the switch, training stays correct and
    only loses the speed-up."""
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        log.debug("trl.trainer.utils._use_triton not found: the LM head scores every position")
        yield
        return
    trl_utils._use_triton = lambda device: original(device) or device.type == "cpu"
    try:
        yield
    finally:
        trl_utils._use_triton = original


def save_adapter(peft_model, tokenizer, adapter_dir: Path) -> None:
    """The adapter alone (safetensors) plus the tokenizer, loadable with peft's AutoPeftModelForCausalLM;
    after full fine-tuning (a plain transformers model), the whole model, also as safetensors."""
    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    tokenizer.save_pretrained(adapter_dir)


def is_main_process() -> bool:
    """True on the one process that saves, predicts and reports (rank 0 under torchrun or accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0
