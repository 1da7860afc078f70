"""The encoder tier: a sentence encoder with a classification head, fine-tuned on the task's train split.

For pure classification a 20-400M-parameter encoder (MiniLM, BERT, DeBERTa-v3, ModernBERT) is often as
accurate as a generative model many times its size, at a fraction of its latency and cost. This module loads
one (`AutoModelForSequenceClassification`: the pretrained encoder and a new head over the recipe's labels),
fine-tunes it with the transformers Trainer (every weight, or a LoRA adapter plus the head), calibrates its
probabilities on the validation split by temperature scaling (slmtier.benchmark.calibration), and predicts as
one more `Candidate`: its answer is the most probable label, its confidence that label's calibrated
probability, which drives the cascade like the generative SLM's.

Run directory: encoder/ (the fine-tuned weights or adapter, safetensors, with the tokenizer),
encoder/calibration.json (temperature, ECE before and after), encoder/training.json (written last: its
presence says the weights beside it are complete), encoder_trainer/ (checkpoints while training).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from slmtier.benchmark.calibration import Calibration, calibrate, expected_calibration_error
from slmtier.benchmark.cost import price_local
from slmtier.config import EncoderConfig, HardwareConfig, RunConfig
from slmtier.data import Example, Splits
from slmtier.errors import ModelSourceError, RunDirError, SlmtierError
from slmtier.inference import Generation
from slmtier.models import resolve_bf16
from slmtier.models.embedded import resolve_embedded_encoder
from slmtier.models.loading import resolve_source
from slmtier.run_dir import write_json_atomic
from slmtier.tiers.prepared import Prepared
from slmtier.training import (
    check_sampling_strategy,
    find_last_checkpoint,
    is_main_process,
    read_trainer_state,
    trainer_arguments,
)

log = logging.getLogger(__name__)

NAME = ENCODER = "encoder"  # candidate name and predictions/encoder.jsonl
FINETUNE_MODES = ("full", "lora")
CLASS_WEIGHTS = ("none", "balanced")
POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class EncoderTrainResult:
    train_loss: float
    runtime_s: float  # this process's training time (after a resume: the resumed part only)
    steps: int
    epochs: float
    examples: int
    examples_per_s: float  # examples trained per second of runtime_s
    truncated_examples: int  # inputs longer than encoder.max_length tokens (cut)
    finetune: str  # full | lora
    trainable_params: int
    total_params: int
    class_weights: list[float] | None = None  # per label, in the recipe's order; None = unweighted
    resumed_from_step: int | None = None
    bf16: bool | None = None  # trained under bf16 autocast (encoder.bf16, or what null resolved to here)


def check(cfg: RunConfig) -> None:
    check_encoder_config(cfg.encoder, cfg.task.kind)


def prepare(cfg: RunConfig, task, splits: Splits, run_dir: Path, *, base: Callable) -> Prepared:
    """The tier trained (or resumed, or loaded) and calibrated, as a candidate with its block of metrics.json
    (`tiers.encoder.training`). `base` (the SLM's base model) is not used."""
    candidate, entry = prepare_encoder(
        cfg.encoder, splits.train, splits.validation, list(cfg.task.labels), run_dir=run_dir,
        bf16=resolve_bf16(cfg.inference.bf16), report_to=cfg.tracking.report_to,
    )  # fmt: skip
    return Prepared(candidate, entry)


def load(run_dir: Path, cfg: RunConfig) -> EncoderCandidate:
    """A finished run's encoder tier, answering as the benchmark did (same weights, temperature, batching)."""
    folder = Path(run_dir) / ENCODER
    if not (folder / "training.json").is_file():
        raise RunDirError(f"{folder}: no training.json; did the run finish training its encoder?")
    model, tokenizer = load_trained_encoder(folder, cfg.encoder, list(cfg.task.labels))
    calibration = folder / "calibration.json"
    temperature = json.loads(calibration.read_text(encoding="utf-8"))["temperature"] if calibration.is_file() else 1.0
    return build_candidate(cfg.encoder, model, tokenizer, list(cfg.task.labels), bf16=resolve_bf16(cfg.inference.bf16),
                           temperature=temperature)  # fmt: skip


def complete_entry(entry: dict, test_rows: list[dict]) -> dict:
    """The calibration's effect on the held-out test split, beside its fit on validation."""
    entry["calibration"]["test"] = calibration_on_test(test_rows, entry["calibration"]["bins"])
    return entry


def price(hardware: HardwareConfig, measured_requests_per_s: float | None) -> dict:
    """USD per 1k requests on the hardware profile. A declared throughput must be the encoder's own
    (hardware.encoder_requests_per_s): one declared for the generative tier (hardware.requests_per_s) says
    nothing of the encoder's, which is then left unpriced rather than priced at the wrong rate."""
    if hardware.encoder_requests_per_s is not None:
        return price_local(replace(hardware, requests_per_s=hardware.encoder_requests_per_s), None)
    if hardware.requests_per_s is not None:
        unpriced = price_local(replace(hardware, requests_per_s=None), None)
        return {**unpriced, "basis": unpriced["basis"] + " (declare hardware.encoder_requests_per_s)"}
    return price_local(hardware, measured_requests_per_s)


def build_candidate(cfg: EncoderConfig, model, tokenizer, labels: list[str], *, bf16: bool,
                    temperature: float = 1.0) -> EncoderCandidate:  # fmt: skip
    how = "LoRA" if cfg.finetune == "lora" else "fine-tuned"
    return EncoderCandidate(ENCODER, f"{cfg.name} ({how} encoder)", model, tokenizer, labels,
                            batch_size=cfg.batch_size, max_length=cfg.max_length, bf16=bf16,
                            temperature=temperature)  # fmt: skip


def check_encoder_config(cfg: EncoderConfig, task_kind: str) -> None:
    """Value checks run at start-up, before any data or model is loaded."""
    if task_kind != "classification":
        raise SlmtierError(f"the encoder tier classifies; a {task_kind} recipe cannot use it (remove it from tiers)")
    if cfg.finetune not in FINETUNE_MODES:
        raise SlmtierError(f"encoder.finetune {cfg.finetune!r} is not one of {list(FINETUNE_MODES)}")
    check_sampling_strategy("encoder.train_sampling_strategy", cfg.train_sampling_strategy)
    if cfg.class_weights not in CLASS_WEIGHTS:
        raise SlmtierError(f"encoder.class_weights {cfg.class_weights!r} is not one of {list(CLASS_WEIGHTS)}")
    if cfg.pooling not in POOLINGS:
        raise SlmtierError(f"encoder.pooling {cfg.pooling!r} is not one of {list(POOLINGS)}")
    if cfg.max_length < 8 or cfg.batch_size < 1 or cfg.per_device_train_batch_size < 1:
        raise SlmtierError("encoder.max_length must be >= 8 and the encoder's batch sizes >= 1")
    if cfg.ece_bins < 2:
        raise SlmtierError("encoder.ece_bins must be at least 2")


def resolve_encoder_path(cfg: EncoderConfig) -> str:
    """The model folder (embedded, local) or the hub id."""
    return resolve_source(cfg.source, "encoder.source", resolve_embedded_encoder)


def load_encoder(cfg: EncoderConfig, labels: list[str], path: str | None = None):
    """(model, tokenizer): the pretrained encoder with a new, randomly initialised head over `labels`
    (or, with `path`, a fine-tuned encoder saved by `save_encoder`). Safetensors only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = path or resolve_encoder_path(cfg)
    options = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: index for index, label in enumerate(labels)},
            use_safetensors=True,
            **options,
        )
    except (OSError, ValueError) as err:
        raise ModelSourceError(
            f"encoder {cfg.name!r} could not be loaded from {path!r}: {err}\n"
            "Use the embedded encoder (encoder=minilm_l6), a local folder, or a hub id that is reachable "
            "or already in the Hugging Face cache."
        ) from err
    if tokenizer.pad_token is None:  # some encoders' tokenizers name no pad token; any will do with a mask
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
        model.config.pad_token_id = tokenizer.pad_token_id
    set_pooling(model, cfg.pooling, f"encoder {cfg.name!r} ({path})")
    return model, tokenizer


def set_pooling(model, pooling: str, name: str) -> None:
    """How the classification head sees a text. `cls`: as transformers builds the head (BERT's pooler: a dense
    layer over the first token). `mean`: the mean of the last hidden states over the input's real tokens (the
    attention mask), in place of the pooler's output — the representation sentence-transformers checkpoints such
    as all-MiniLM-L6-v2 were trained to produce. `mean` needs a head that reads the base model's pooler output
    (the BERT family). The choice is written into the model's config (`slmtier_pooling`), so an encoder saved
    after training is loaded as it was trained, and a mismatch with the recipe is an error."""
    saved = getattr(model.config, "slmtier_pooling", None)
    if saved is not None and saved != pooling:
        raise SlmtierError(f"{name} was trained with encoder.pooling={saved}, the config says {pooling}: "
                           f"set encoder.pooling={saved}")  # fmt: skip
    model.config.slmtier_pooling = pooling
    if pooling == "cls":
        return
    body = model.base_model
    if getattr(body, "pooler", None) is None:
        raise SlmtierError(f"{name}: encoder.pooling=mean needs a classification head over the base model's pooler "
                           f"(the BERT family); {type(model).__name__} has none: use encoder.pooling=cls")  # fmt: skip
    body.pooler.requires_grad_(False)  # its output is replaced: no gradient, no optimizer state, no unused DDP grads
    body.register_forward_hook(_mean_pooled, with_kwargs=True)


def unused_pooler(model) -> list[str]:
    """The full names of the pooler's modules where mean pooling discards its output (none under `cls`)."""
    if getattr(model.config, "slmtier_pooling", "cls") != "mean":
        return []
    inside = {id(module) for module in model.base_model.pooler.modules()}
    return [name for name, module in model.named_modules() if id(module) in inside]


def _mean_pooled(module, args, kwargs, output):
    """Forward hook on the base model: its pooler output replaced by the masked mean of its last hidden states.
    The pooler still runs (one small matmul) so the output keeps its fields in place."""
    hidden = output.last_hidden_state
    mask = kwargs.get("attention_mask")
    if mask is None:
        output.pooler_output = hidden.mean(dim=1)
        return output
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    output.pooler_output = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return output


def encode_examples(tokenizer, examples: list[Example], labels: list[str], max_length: int):
    """A datasets.Dataset of token ids and label indices, and how many inputs were cut at max_length."""
    from datasets import Dataset

    index = {label: position for position, label in enumerate(labels)}
    full = tokenizer([example.input for example in examples], truncation=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    encoded = tokenizer([example.input for example in examples], truncation=True, max_length=max_length)
    rows = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "labels": [index[example.target] for example in examples]}  # fmt: skip
    return Dataset.from_dict(rows), truncated


def balanced_class_weights(examples: list[Example], labels: list[str]) -> list[float]:
    """n / (k x count) per label (sklearn's "balanced"); a label absent from the train split weighs 0."""
    counts = Counter(example.target for example in examples)
    total, k = len(examples), len(labels)
    return [total / (k * counts[label]) if counts[label] else 0.0 for label in labels]


def weighted_loss(weights: list[float]):
    """A Trainer `compute_loss_func`: cross-entropy with a weight per class."""
    tensor = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=tensor.to(logits.device))

    return loss


def train_encoder(model, tokenizer, train: list[Example], labels: list[str], cfg: EncoderConfig, *,
                  work_dir: Path, report_to: list[str] = (), callbacks: list = ()):  # fmt: skip
    """Fine-tune (every weight, or LoRA + the head) with transformers' Trainer; resumes from the newest
    complete checkpoint in work_dir. Returns (the trained model, EncoderTrainResult)."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    dataset, truncated = encode_examples(tokenizer, train, labels, cfg.max_length)
    if truncated:
        log.warning("%d of %d training inputs exceed encoder.max_length=%d tokens and are cut",
                    truncated, len(train), cfg.max_length)  # fmt: skip
    if cfg.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        # SEQ_CLS: peft trains and saves the new classification head whole, beside the adapter.
        adapter = LoraConfig(
            task_type="SEQ_CLS",
            r=cfg.lora.r,
            lora_alpha=cfg.lora.lora_alpha,
            lora_dropout=cfg.lora.lora_dropout,
            target_modules=cfg.lora.target_modules or "all-linear",
            # Under mean pooling the pooler's output is discarded: an adapter there would train to nothing.
            exclude_modules=unused_pooler(model) or None,
        )
        model = get_peft_model(model, adapter)
    weights = balanced_class_weights(train, labels) if cfg.class_weights == "balanced" else None
    args = TrainingArguments(**trainer_arguments(cfg, output_dir=work_dir, report_to=report_to),
                             train_sampling_strategy=cfg.train_sampling_strategy)  # fmt: skip
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),  # each batch padded to its own longest input
        processing_class=tokenizer,
        compute_loss_func=weighted_loss(weights) if weights else None,
        callbacks=list(callbacks) or None,
    )
    checkpoint = find_last_checkpoint(work_dir)
    # Read before training: the Trainer's rotation (save_total_limit) may delete this checkpoint on the way.
    before = read_trainer_state(checkpoint) if checkpoint else {}
    if checkpoint is not None:
        log.info("resuming the encoder's training from %s", checkpoint)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    runtime = float(output.metrics["train_runtime"])
    steps = int(trainer.state.global_step)
    done_before = int(before.get("global_step", 0)) * cfg.per_device_train_batch_size
    trained = trainer.model
    result = EncoderTrainResult(
        train_loss=float(output.training_loss),
        runtime_s=runtime,
        steps=steps,
        epochs=float(trainer.state.epoch or 0.0),
        examples=len(train),
        examples_per_s=(steps * cfg.per_device_train_batch_size - done_before) / runtime if runtime else 0.0,
        truncated_examples=truncated,
        finetune=cfg.finetune,
        trainable_params=sum(p.numel() for p in trained.parameters() if p.requires_grad),
        total_params=sum(p.numel() for p in trained.parameters()),
        class_weights=[round(w, 6) for w in weights] if weights else None,
        resumed_from_step=before.get("global_step"),
        bf16=bool(args.bf16),
    )
    log.info("encoder trained %d steps in %.0f s: loss %.3f", steps, runtime, result.train_loss)
    return trained, result


def save_encoder(model, tokenizer, folder: Path) -> None:
    """The fine-tuned model (or, after LoRA, the adapter and the head) and the tokenizer, as safetensors."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_trained_encoder(folder: Path, cfg: EncoderConfig, labels: list[str]):
    """(model, tokenizer) saved by `save_encoder`; a LoRA adapter is loaded onto the pretrained encoder and
    merged into it (one matmul per layer when predicting)."""
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        base, tokenizer = load_encoder(cfg, labels)
        return PeftModel.from_pretrained(base, folder).merge_and_unload(), tokenizer
    return load_encoder(cfg, labels, path=str(folder))


def predict_logits(model, tokenizer, texts: list[str], *, batch_size: int, max_length: int, bf16: bool,
                   desc: str = ENCODER) -> tuple[torch.Tensor, list[float], list[int], list[int]]:  # fmt: skip
    """Logits (n x labels, fp32) in input order, each row's batch wall time (ms), batch size and token count.
    Inputs are sorted by length so each batch pads little.

    Every batch has one of few shapes (padded_shape): its length a multiple of SHAPE_STEP tokens, its row count
    1-8 or a multiple of 8 (filler rows are dropped). A server batches whatever arrives together, and the CPU
    kernels keep buffers per shape they have seen: with every (rows, length) pair possible, the router's
    memory grew without bound (723 to 1,121 MB over 4,000 requests at concurrency 32); with these ~90 shapes
    it levels off."""
    model.eval()
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    logits = torch.zeros(len(texts), model.config.num_labels)
    latency_ms, sizes = [0.0] * len(texts), [0] * len(texts)
    with tqdm(total=len(texts), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            began = time.perf_counter()
            filled = rows + rows[:1] * (padded_rows(len(rows)) - len(rows))
            batch = tokenizer([texts[i] for i in filled], truncation=True, max_length=max_length, padding=True,
                              pad_to_multiple_of=SHAPE_STEP, return_tensors="pt").to(model.device)  # fmt: skip
            with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(**batch).logits.float().cpu()[: len(rows)]
            elapsed = (time.perf_counter() - began) * 1000
            for position, row in enumerate(rows):
                logits[row], latency_ms[row], sizes[row] = out[position], elapsed, len(rows)
            bar.update(len(rows))
    return logits, latency_ms, sizes, lengths


SHAPE_STEP = 16  # a batch's token length is a multiple of this (predict_logits)


def padded_rows(rows: int) -> int:
    """A batch's row count as run: as is up to 8, then the next multiple of 8."""
    return rows if rows <= 8 else -(-rows // 8) * 8


@dataclass
class EncoderCandidate:
    """The encoder tier as a benchmark candidate: the most probable label, with its calibrated probability
    as the confidence (and the uncalibrated one beside it, for the calibration report)."""

    name: str
    model: str
    hf_model: Any
    tokenizer: Any
    labels: list[str]
    batch_size: int = 32
    max_length: int = 128
    bf16: bool = False
    temperature: float = 1.0  # fitted on validation (calibration.json); 1 = uncalibrated
    info: dict = field(default_factory=lambda: {"kind": "local", "tier": ENCODER})

    def logits(self, examples: list[Example]) -> torch.Tensor:
        return self._run(examples)[0]

    def _run(self, examples: list[Example]):
        return predict_logits(self.hf_model, self.tokenizer, [e.input for e in examples], batch_size=self.batch_size,
                              max_length=self.max_length, bf16=self.bf16, desc=self.name)  # fmt: skip

    def predict(self, task, examples: list[Example]) -> list[Generation]:
        logits, latency_ms, sizes, lengths = self._run(examples)
        calibrated = torch.softmax(logits / self.temperature, dim=-1)
        raw = torch.softmax(logits, dim=-1)
        best = logits.argmax(dim=-1).tolist()
        return [
            Generation(
                raw_output=self.labels[label],
                latency_ms=latency_ms[row],
                input_tokens=lengths[row],
                output_tokens=0,  # a classification head generates nothing
                batch_size=sizes[row],
                confidence=round(float(calibrated[row, label]), 6),
                confidence_uncalibrated=round(float(raw[row, label]), 6),
                label_probs=tuple(round(float(p), 6) for p in calibrated[row]),
            )
            for row, label in enumerate(best)
        ]


def fit_calibration(candidate: EncoderCandidate, validation: list[Example], labels: list[str], *,
                    bins: int) -> Calibration:  # fmt: skip
    """Temperature scaling fitted on the validation split's logits and gold labels."""
    logits = candidate.logits(validation)
    gold = torch.tensor([labels.index(example.target) for example in validation])
    return calibrate(logits, gold, bins=bins)


def prepare_encoder(cfg: EncoderConfig, train: list[Example], validation: list[Example], labels: list[str], *,
                    run_dir: Path, bf16: bool, report_to: list[str] = ()) -> tuple[EncoderCandidate, dict]:  # fmt: skip
    """Train (or, in a rerun of the same run directory, load or resume) and calibrate the encoder tier.
    Returns the candidate and its block of metrics.json ((None, None) on ranks other than 0 of a
    multi-process launch, which only train)."""
    folder, summary = run_dir / ENCODER, run_dir / ENCODER / "training.json"
    if summary.is_file():
        if not is_main_process():
            return None, None
        log.info("the encoder's training finished in an earlier attempt: loading %s", folder)
        model, tokenizer = load_trained_encoder(folder, cfg, labels)
        result = EncoderTrainResult(**json.loads(summary.read_text(encoding="utf-8")))
    else:
        from transformers import set_seed

        set_seed(cfg.seed)  # the new head's initial weights too, whatever ran before in this process
        model, tokenizer = load_encoder(cfg, labels)
        model, result = train_encoder(model, tokenizer, train, labels, cfg, work_dir=run_dir / "encoder_trainer",
                                      report_to=report_to)  # fmt: skip
        if not is_main_process():  # every rank trained its share (torchrun / accelerate launch); rank 0 goes on
            return None, None
        save_encoder(model, tokenizer, folder)  # after LoRA: the adapter and the head
        if cfg.finetune == "lora":
            model = model.merge_and_unload()  # predicts with the adapter folded in
        write_json_atomic(summary, asdict(result))  # last: the weights beside it are complete
        shutil.rmtree(run_dir / "encoder_trainer", ignore_errors=True)
    candidate = build_candidate(cfg, model, tokenizer, list(labels), bf16=bf16)
    calibration = None
    if cfg.calibrate and validation:
        calibration_file = folder / "calibration.json"
        if calibration_file.is_file():
            calibration = Calibration(**json.loads(calibration_file.read_text(encoding="utf-8")))
        else:
            calibration = fit_calibration(candidate, validation, labels, bins=cfg.ece_bins)
            write_json_atomic(calibration_file, asdict(calibration))
        candidate.temperature = calibration.temperature
        if calibration.fitted:
            log.info("encoder calibrated on %d validation examples: T = %.3f, ECE %.3f -> %.3f", calibration.n,
                     calibration.temperature, calibration.ece_before, calibration.ece_after)  # fmt: skip
        else:
            log.warning("the encoder answered all %d validation examples right: no temperature can be fitted, its "
                        "confidence stays the raw softmax (a larger validation split would calibrate it)",
                        calibration.n)  # fmt: skip
    elif cfg.calibrate:
        log.warning("no validation split: the encoder's probabilities are not calibrated "
                    "(set data.validation or data.validation_holdout)")  # fmt: skip
    entry = {
        "base_model": cfg.name,
        "source": cfg.source,
        "trust_remote_code": cfg.trust_remote_code,
        "max_length": cfg.max_length,
        "training": asdict(result),
        "calibration": {"validation": asdict(calibration) if calibration else None, "bins": cfg.ece_bins},
        "routing": {  # routing.yaml's `encoder` block ({run_dir}: filled in when it is written)
            "model": "{run_dir}/" + ENCODER,
            "base_model": cfg.source,
            "loader": "transformers.AutoModelForSequenceClassification",
            "temperature": candidate.temperature,
            "labels": list(labels),
        },
    }
    return candidate, entry


def calibration_on_test(rows: list[dict], bins: int) -> dict | None:
    """ECE of the encoder's test answers before and after temperature scaling (held out from the fit)."""
    usable = [row for row in rows if row.get("confidence_uncalibrated") is not None]
    if not usable:
        return None
    correct = torch.tensor([float(row["correct"]) for row in usable])
    before = torch.tensor([row["confidence_uncalibrated"] for row in usable])
    after = torch.tensor([row["confidence"] for row in usable])
    return {
        "n": len(usable),
        "ece_before": expected_calibration_error(before, correct, bins=bins),
        "ece_after": expected_calibration_error(after, correct, bins=bins),
    }
