"""`make bench`: slmtier's speed against plain baselines measured in the same run, on this machine.

    python scripts/bench.py                       # everything: ~20 min, ~30 more for the router part
    python scripts/bench.py --only matmul train   # some parts (merged into bench/results.json)

Each measurement runs in its own child process (its own peak memory, no state carried over), on the same
data, one after another:
- matmul: the machine's fp32 and bf16 matmul peak, the ceiling for model-FLOPs utilisation (MFU);
- train: the plain reference (transformers Trainer + peft, fp32, every example padded to trainer.max_length;
  a few steps: speed and memory only) and TRL's SFTTrainer as it comes (fp32, padded to the longest in the
  batch, random order; one epoch: speed, memory, validation accuracy), same LoRA config, data and batch size;
- demo: `python train.py recipe=ticket_classifier` end to end, which is also slmtier's own training row
  (one epoch with the shipped defaults: speed, memory, validation accuracy);
- classify: label scoring vs generate() one example at a time (and batched generation), with the demo's
  adapter on the ticket test set, and with the untuned model on banking77 (77 labels listed in the prompt;
  needs ../shared/data, skipped without it);
- generate: extraction answers generated one at a time vs in length-sorted batches;
- serve: the demo's SLM behind `slmtier serve`, through slmtier's LLM-tier client at several concurrencies;
- tiers: the demo's encoder tier against its SLM tier (label scoring): per-request latency one request at a
  time (what a lightly loaded service sees) and examples/s in batches, on the ticket test set (`--tiers-run
  RUN_DIR` times another run's tiers, e.g. banking77's, on its first `--tiers-n` test examples);
- router: `slmtier route` (scripts/bench_router.py) with the demo's run and an `order_extractor` run (trained
  into the work folder when missing): parity with the benchmark, the encoder's latency at concurrency 1, 8
  and 32 against offline batches, the router's overhead, the live cascade with `transformers serve` of the
  embedded model as the LLM, and 2,000 requests with 20% LLM faults;
- monitor: `slmtier monitor` by simulation (scripts/bench_monitor.py; docs/monitor.md shows it);
- distill: students of a served teacher, learning curves, and the router's log back into training
  (scripts/bench_distill.py, after monitor: it reads its logs; docs/distillation.md shows it).
Writes bench/results.json and bench/results.md; `--readme docs/speed.md` (with `--render-only`: no measuring) puts the
table between the bench markers of docs/speed.md, the manual's speed page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ["matmul", "train", "demo", "classify", "generate", "encoder", "profile", "serve", "tiers", "router", "monitor",
         "distill"]  # fmt: skip
TRAIN_SETTINGS = ["reference", "trl_plain"]
ROUTER_PARTS = ["parity", "numerics", "latency", "cascade", "load"]


# ---------------------------------------------------------------- children: one measurement each


def child_matmul(args) -> dict:
    """Sustained GFLOP/s of a square matmul, fp32 and bf16, best of several rounds."""
    import torch

    result = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = (torch.randn(2048, 2048, dtype=dtype) for _ in range(2))
        a @ b  # warm-up
        best = 0.0
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(4):
                a @ b
            best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - began) / 1e9)
        result[f"{name}_gflops"] = round(best, 1)
    result["threads"] = torch.get_num_threads()
    return result


def load_recipe(recipe: str, overrides: list[str] = ()):
    from slmtier.config import compose_config, to_run_config

    return to_run_config(compose_config([f"recipe={recipe}", *overrides]))


class StepTimer:
    """Useful tokens and seconds between the end of step `skip` and the end of training: the first steps pay
    one-off costs (allocator, kernels) that a longer run amortises."""

    def __new__(cls, skip: int):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == skip:
                    self.began, self.tokens_before = time.perf_counter(), int(state.num_input_tokens_seen)

            def on_train_begin(self, args, state, control, **kwargs):
                if skip == 0:
                    self.began, self.tokens_before = time.perf_counter(), 0

            def on_train_end(self, args, state, control, **kwargs):
                self.seconds = time.perf_counter() - self.began
                self.tokens = int(state.num_input_tokens_seen) - self.tokens_before
                self.steps = state.global_step - skip

        return _Timer()


def child_train(args) -> dict:
    """Train `args.setting`: the reference for a few timed steps (after 2 untimed), TRL's trainer for one epoch
    (the recipe's own length), then its validation accuracy by label scoring."""
    import torch

    from slmtier.data import load_splits
    from slmtier.label_scoring import score_labels
    from slmtier.models import resolve_bf16
    from slmtier.tasks import build_task
    from slmtier.tiers.slm import load_base_model
    from slmtier.training import build_sft_dataset

    cfg = load_recipe(args.recipe)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    model, tokenizer = load_base_model(cfg)
    body_params = count_body_params(model)
    reference = args.setting == "reference"
    timer = StepTimer(skip=2 if reference else 0)
    steps = args.reference_steps if reference else cfg.trainer.max_steps
    trainer_cfg = replace(cfg.trainer, max_steps=steps)
    dataset = build_sft_dataset(task, splits.train, chat_template_kwargs=cfg.model.chat_template_kwargs)
    train = train_reference if reference else train_trl_plain
    peft_model, loss = train(model, tokenizer, dataset, cfg, trainer_cfg, Path(args.work) / args.setting, timer)
    result = {
        "setting": args.setting,
        "steps": timer.steps,
        "useful_tokens_timed": timer.tokens,
        "tokens_per_s": round(timer.tokens / timer.seconds, 1),
        "dtype": "fp32",
        "body_params_m": round(body_params / 1e6, 1),
        "train_loss": round(loss, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": torch.get_num_threads(),
    }
    if not reference:
        answers = score_labels(
            peft_model, tokenizer, [task.build_messages(e) for e in splits.validation], list(task.labels),
            bf16=resolve_bf16(cfg.inference.bf16), desc="validation",
        )  # fmt: skip
        correct = sum(task.parse(a.raw_output) == e.target for a, e in zip(answers, splits.validation, strict=True))
        result["validation_accuracy"] = round(correct / len(splits.validation), 4)
    return result


def count_body_params(model) -> int:
    """Parameters outside the embeddings and the LM head: the ones every token passes through."""
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)


def train_reference(model, tokenizer, dataset, cfg, trainer_cfg, work: Path, timer):
    """The plain recipe: transformers Trainer + peft, fp32, sdpa attention, every example padded to
    trainer.max_length, loss on the answer tokens (prompt and padding labelled -100), random order."""
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from slmtier.training import build_peft_config

    def tokenize(row):
        kwargs = row.get("chat_template_kwargs") or {}
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True, **kwargs)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False, **kwargs)
        prompt_len = len(tokenizer(prompt, add_special_tokens=False).input_ids)
        ids = tokenizer(full, add_special_tokens=False).input_ids[: trainer_cfg.max_length]
        pad = trainer_cfg.max_length - len(ids)
        labels = [-100] * prompt_len + ids[prompt_len:]
        return {
            "input_ids": ids + [tokenizer.pad_token_id] * pad,
            "attention_mask": [1] * len(ids) + [0] * pad,
            "labels": labels + [-100] * pad,
        }

    tokenized = dataset.map(tokenize, remove_columns=dataset.column_names)
    peft_model = get_peft_model(model, build_peft_config(cfg.lora, cfg.model.lora_target_modules))
    training_args = TrainingArguments(
        output_dir=str(work), max_steps=trainer_cfg.max_steps,
        per_device_train_batch_size=trainer_cfg.per_device_train_batch_size,
        learning_rate=trainer_cfg.learning_rate, lr_scheduler_type=trainer_cfg.lr_scheduler_type,
        warmup_steps=trainer_cfg.warmup_steps, logging_steps=trainer_cfg.logging_steps, seed=trainer_cfg.seed,
        use_cpu=True, bf16=False, save_strategy="no", report_to="none", include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    trainer = Trainer(
        model=peft_model, args=training_args, train_dataset=tokenized, data_collator=default_data_collator,
        callbacks=[timer],
    )  # fmt: skip
    output = trainer.train()
    return peft_model, output.training_loss


def train_trl_plain(model, tokenizer, dataset, cfg, trainer_cfg, work: Path, timer):
    """TRL's SFTTrainer as it comes: fp32, sdpa, batches padded to their longest example, random order,
    the LM head over every position (its default off CUDA)."""
    from trl import SFTTrainer

    from slmtier.training import build_peft_config, build_sft_config

    plain = replace(trainer_cfg, bf16=False, train_sampling_strategy="random")
    trainer = SFTTrainer(
        model=model, args=build_sft_config(plain, output_dir=work, report_to=[]), train_dataset=dataset,
        processing_class=tokenizer, peft_config=build_peft_config(cfg.lora, cfg.model.lora_target_modules),
        callbacks=[timer],
    )  # fmt: skip
    output = trainer.train()
    return trainer.model, output.training_loss


def child_classify(args) -> dict:
    """Label scoring vs generate() one example at a time vs batched generation. Ticket recipe: the demo's
    fine-tuned adapter, whole test set; banking77 (`--classify-recipe`): the untuned model, a seeded sample.
    The per-example baseline is the plain (PeftModel) generate; the others run as slmtier predicts."""
    from peft import PeftModel

    from slmtier.data import load_splits
    from slmtier.inference import generate_batched, merged_adapter
    from slmtier.label_scoring import score_labels
    from slmtier.models import resolve_bf16
    from slmtier.tasks import build_task
    from slmtier.tiers.slm import fit_generation_budget, load_base_model

    tuned = args.classify_recipe == args.recipe
    overrides = [] if tuned else [f"data.max_test_examples={args.classify_n}"]
    cfg = load_recipe(args.classify_recipe, overrides)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    cfg, _ = fit_generation_budget(cfg, task, splits)  # the budget a run of this recipe generates with
    test = splits.test
    model, tokenizer = load_base_model(cfg)
    if tuned:
        model = PeftModel.from_pretrained(model, str(Path(args.work) / "demo" / "adapter"), is_trainable=False)
    conversations = [task.build_messages(example) for example in test]
    settings = {"bf16": resolve_bf16(cfg.inference.bf16), "max_new_tokens": cfg.inference.max_new_tokens}
    batch = cfg.inference.batch_size

    def merged(predict):
        with merged_adapter(model):
            return predict()

    methods = {
        "generate_per_example": lambda: generate_batched(
            model, tokenizer, conversations, batch_size=1, desc="generate, one at a time", **settings
        ),
        "generate_batched": lambda: merged(
            lambda: generate_batched(model, tokenizer, conversations, batch_size=batch, desc="batched", **settings)
        ),
        "label_scoring": lambda: merged(
            lambda: score_labels(
                model, tokenizer, conversations, list(task.labels), batch_size=batch, bf16=settings["bf16"]
            )
        ),
    }
    result, parsed = timed_predictions(methods, task, test)
    result["recipe"], result["model"] = args.classify_recipe, "fine-tuned (demo adapter)" if tuned else "untuned"
    result["differences"] = [
        {"id": e.id, "gold": e.target, "generated": g, "scored": s}
        for e, g, s in zip(test, parsed["generate_per_example"], parsed["label_scoring"], strict=True)
        if g != s
    ]
    return result


def timed_predictions(methods: dict, task, examples) -> tuple[dict, dict]:
    """Each method's wall time, examples/s and task metric, and its parsed answers."""
    result, parsed = {"n": len(examples)}, {}
    for name, predict in methods.items():
        began = time.perf_counter()
        answers = predict()
        wall = time.perf_counter() - began
        parsed[name] = [task.parse(a.raw_output) for a in answers]
        scores = task.score(parsed[name], [e.target for e in examples], inputs=[e.input for e in examples])
        result[name] = {
            "wall_s": round(wall, 2),
            "examples_per_s": round(len(examples) / wall, 3),
            task.parts_metric: round(scores[task.parts_metric], 4),
        }
    return result, parsed


def child_generate(args) -> dict:
    """Extraction answers generated one example at a time vs in length-sorted batches: the untuned model
    prompted with 3 training examples, as the default baseline is (so its answers are JSON worth scoring)."""
    from slmtier.benchmark.candidates import select_few_shot
    from slmtier.data import load_splits
    from slmtier.inference import generate_batched
    from slmtier.models import resolve_bf16
    from slmtier.tasks import build_task
    from slmtier.tiers.slm import fit_generation_budget, load_base_model

    cfg = load_recipe(args.generate_recipe)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    cfg, _ = fit_generation_budget(cfg, task, splits)  # the budget a run of this recipe generates with
    test = splits.test[: args.generate_n]
    model, tokenizer = load_base_model(cfg)
    few_shot = select_few_shot(splits.train, 3, seed=0)
    conversations = [task.build_messages(example, few_shot=few_shot) for example in test]
    settings = {"max_new_tokens": cfg.inference.max_new_tokens, "bf16": resolve_bf16(cfg.inference.bf16)}
    methods = {
        "generate_per_example": lambda: generate_batched(
            model, tokenizer, conversations, batch_size=1, desc="one at a time", **settings
        ),
        "generate_batched": lambda: generate_batched(
            model, tokenizer, conversations, batch_size=cfg.inference.batch_size, desc="batched", **settings
        ),
    }
    result, parsed = timed_predictions(methods, task, test)
    result["recipe"], result["model"] = args.generate_recipe, "untuned, 3-shot"
    result["same_answers"] = sum(a == b for a, b in zip(*parsed.values(), strict=True))
    return result


def child_tiers(args) -> dict:
    """The demo's two local tiers on the ticket test set, loaded as the router loads them: one request at a
    time (each request's own latency, p50/p95) and in the run's batches (examples/s)."""
    from slmtier.benchmark.summary import percentile
    from slmtier.data import load_splits
    from slmtier.run_dir import RunDir
    from slmtier.tasks import build_task
    from slmtier.tiers import encoder, slm

    run_dir = args.tiers_run or Path(args.work) / "demo"
    cfg = RunDir(run_dir).read_config()
    task = build_task(cfg.task)
    test = load_splits(cfg.data, task.check_target).test[: args.tiers_n]
    result = {"n": len(test), "recipe": cfg_recipe(run_dir), "run_dir": str(run_dir)}
    for name, tier in (("encoder", encoder), ("slm", slm)):
        candidate = tier.load(run_dir, cfg)
        single = replace(candidate, batch_size=1).predict(task, test)
        began = time.perf_counter()
        batched = candidate.predict(task, test)
        wall = time.perf_counter() - began
        latencies = [generation.latency_ms for generation in single]
        correct = [task.parse(g.raw_output) == e.target for g, e in zip(batched, test, strict=True)]
        result[name] = {
            "model": cfg.encoder.name if name == "encoder" else cfg.model.name,
            "per_request_p50_ms": round(percentile(latencies, 50), 1),
            "per_request_p95_ms": round(percentile(latencies, 95), 1),
            "batch_size": candidate.batch_size,
            "batched_examples_per_s": round(len(test) / wall, 2),
            "accuracy": round(sum(correct) / len(test), 4),
        }
        del candidate
    return result


def child_encoder(args) -> dict:
    """The encoder tier on the many-label recipe at full size (banking77: 9,503 train rows), as a run trains it
    (the shipped encoder config, its precision resolved here): training time, test accuracy with its interval."""
    from transformers import set_seed

    from slmtier.benchmark.stats import bootstrap_interval
    from slmtier.data import load_splits
    from slmtier.models import resolve_bf16
    from slmtier.tasks import build_task
    from slmtier.tiers.encoder import build_candidate, load_encoder, train_encoder

    cfg = load_recipe(args.wide_recipe)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    labels = list(task.labels)
    set_seed(cfg.encoder.seed)
    model, tokenizer = load_encoder(cfg.encoder, labels)
    work = Path(args.work) / "encoder_full"
    shutil.rmtree(work, ignore_errors=True)  # a fresh training, not a resumed one
    began = time.perf_counter()
    model, trained = train_encoder(model, tokenizer, splits.train, labels, replace(cfg.encoder, save_steps=0),
                                   work_dir=work)  # fmt: skip
    wall = time.perf_counter() - began
    candidate = build_candidate(cfg.encoder, model, tokenizer, labels, bf16=resolve_bf16(cfg.inference.bf16))
    answers = candidate.predict(task, splits.test)
    correct = [float(a.raw_output == e.target) for a, e in zip(answers, splits.test, strict=True)]
    interval = bootstrap_interval(correct, [1.0] * len(correct))
    return {
        "recipe": args.wide_recipe, "model": cfg.encoder.name, "train_examples": len(splits.train),
        "test_examples": len(splits.test), "epochs": trained.epochs, "steps": trained.steps,
        "batch_size": cfg.encoder.per_device_train_batch_size, "bf16": trained.bf16,
        "train_wall_s": round(wall, 1), "train_runtime_s": round(trained.runtime_s, 1),
        "examples_per_s": round(trained.examples_per_s, 1), "train_loss": round(trained.train_loss, 4),
        "accuracy": round(interval.value, 4), "accuracy_ci": [round(interval.low, 4), round(interval.high, 4)],
    }  # fmt: skip


def child_profile(args) -> dict:
    """Where the time goes: torch.profiler's top operators (self time) over steps 3-6 of slmtier's SLM training
    on the recipe, and over label scoring of 48 test examples with the demo's adapter."""
    import torch
    from peft import PeftModel
    from transformers import TrainerCallback

    from slmtier.data import load_splits
    from slmtier.inference import merged_adapter
    from slmtier.label_scoring import score_labels
    from slmtier.models import resolve_bf16
    from slmtier.tasks import build_task
    from slmtier.tiers.slm import load_base_model
    from slmtier.training import build_sft_dataset, train_adapter

    cfg = load_recipe(args.recipe)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    result = {}

    class Profiled(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            if state.global_step == 2:
                self.profiler = torch.profiler.profile()
                self.profiler.__enter__()
            elif state.global_step == 6:
                self.profiler.__exit__(None, None, None)
                result["training"] = top_operators(self.profiler)

    model, tokenizer = load_base_model(cfg)
    dataset = build_sft_dataset(task, splits.train, chat_template_kwargs=cfg.model.chat_template_kwargs)
    trainer_cfg = replace(cfg.trainer, max_steps=6, save_steps=0)
    train_adapter(model, tokenizer, dataset, trainer_cfg=trainer_cfg, lora_cfg=cfg.lora,
                  work_dir=Path(args.work) / "profile", model_targets=cfg.model.lora_target_modules,
                  callbacks=[Profiled()])  # fmt: skip
    model, tokenizer = load_base_model(cfg)
    model = PeftModel.from_pretrained(model, str(Path(args.work) / "demo" / "adapter"), is_trainable=False)
    conversations = [task.build_messages(example) for example in splits.test[:48]]
    with merged_adapter(model), torch.profiler.profile() as profiler:
        score_labels(model, tokenizer, conversations, list(task.labels), batch_size=cfg.inference.batch_size,
                     bf16=resolve_bf16(cfg.inference.bf16))  # fmt: skip
    result["label_scoring"] = top_operators(profiler)
    result["bf16"] = resolve_bf16(cfg.trainer.bf16)
    return result


def top_operators(profiler, n: int = 6) -> list[dict]:
    """The n operators with the most self CPU time, each with its share of the profiled total."""
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) or 1
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key.removeprefix("aten::"), "share": round(e.self_cpu_time_total / total, 3),
             "calls": e.count} for e in events[:n]]  # fmt: skip


def cfg_recipe(run_dir: Path) -> str:
    from slmtier.run_dir import RunDir

    folder = RunDir(run_dir)
    return folder.read_metrics().recipe if folder.metrics_file.is_file() else run_dir.name


CHILDREN = {"matmul": child_matmul, "train": child_train, "classify": child_classify, "generate": child_generate,
            "tiers": child_tiers, "encoder": child_encoder, "profile": child_profile}  # fmt: skip


# ---------------------------------------------------------------- parent: run the children, write the table


def run_child(part: str, args, *extra: str) -> dict:
    out = Path(args.work) / f"{part}{'-' + extra[-1] if extra else ''}.json"
    command = [sys.executable, __file__, "--child", part, "--child-out", str(out), *forwarded(args), *extra]
    subprocess.run(command, check=True, cwd=REPO)
    return json.loads(out.read_text())


def forwarded(args) -> list[str]:
    return [
        "--work", str(args.work), "--reference-steps", str(args.reference_steps), "--recipe", args.recipe,
        "--generate-recipe", args.generate_recipe, "--generate-n", str(args.generate_n),
        "--classify-n", str(args.classify_n), "--tiers-n", str(args.tiers_n),
        *(["--tiers-run", str(args.tiers_run)] if args.tiers_run else []),
    ]  # fmt: skip


def run_demo(args) -> dict:
    """`python train.py recipe=...` end to end, through a small wrapper process whose only child it is, so
    that the children's peak RSS is the demo's own."""
    from slmtier.run_dir import RunDir

    run_dir = Path(args.work) / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a resumed one
    command = [sys.executable, "train.py", f"recipe={args.recipe}", f"hydra.run.dir={run_dir}"]
    wrapper = (
        "import resource, subprocess, sys, time; began = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *command], check=True, cwd=REPO, stdout=subprocess.PIPE)
    wall, peak_kb = out.stdout.decode().split()[-2:]
    metrics = RunDir(run_dir).read_metrics()
    training, candidates = metrics.tiers["slm"].training, metrics.candidates
    return {
        "wall_s": round(float(wall), 1),
        "run_dir": str(run_dir),
        "peak_rss_mb": round(int(peak_kb) / 1024),
        "training_s": round(training["runtime_s"], 1),
        "training_steps": training["steps"],
        "training_tokens_per_s": round(training["tokens_per_s"], 1),
        "training_bf16": training.get("bf16"),
        "train_loss": round(training["train_loss"], 4),
        "accuracy": {name: round(c["accuracy"], 4) for name, c in candidates.items()},
        "validation_accuracy": {name: c.get("validation", {}).get("accuracy") for name, c in candidates.items()},
        "verdict": metrics.verdict,
    }


def run_serve(args, demo: dict) -> dict:
    out = Path(args.work) / "serve.json"
    command = [sys.executable, "scripts/bench_serve.py", "--run-dir", demo["run_dir"], "--n", str(args.serve_n)]
    subprocess.run([*command, "--out", str(out)], check=True, cwd=REPO)
    return json.loads(out.read_text())


def run_router(args, demo_dir: Path) -> dict:
    """scripts/bench_router.py on the demo's run and an order_extractor run (trained here when missing), with
    `transformers serve` of the recipe's embedded base model as the live cascade's LLM. `--router-only` runs
    some of its parts (the extraction run is then trained only for the numerics part, and used when present)."""
    from slmtier.models import resolve_model_path

    parts = args.router_only or ROUTER_PARTS
    extract = Path(args.work) / "extract"
    if not (extract / "metrics.json").is_file() and (args.router_only is None or "numerics" in parts):
        subprocess.run([sys.executable, "train.py", f"recipe={args.generate_recipe}", f"hydra.run.dir={extract}"],
                       check=True, cwd=REPO)  # fmt: skip
    cfg = load_recipe(args.recipe)
    llm_model = resolve_model_path(cfg.model, cfg.cache_dir)
    out = Path(args.work) / "router.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "scripts/bench_router.py", "--classify-run", str(demo_dir), "--llm-model",
               str(llm_model), "--out", str(out), "--work", str(Path(args.work) / "router"), "--only", *parts,
               *(["--extract-run", str(extract)] if (extract / "metrics.json").is_file() else [])]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO)
    return {**json.loads(out.read_text()), "parts": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--reference-steps", type=int, default=6, help="steps of the padded reference (2 untimed)")
    parser.add_argument("--recipe", default="ticket_classifier")
    parser.add_argument("--generate-recipe", default="order_extractor")
    parser.add_argument("--generate-n", type=int, default=12, help="test examples for the generation comparison")
    parser.add_argument("--classify-recipe", default="ticket_classifier", help=argparse.SUPPRESS)
    parser.add_argument("--wide-recipe", default="banking77", help="the many-label recipe of the classify part")
    parser.add_argument("--classify-n", type=int, default=48, help="test examples of the many-label recipe")
    parser.add_argument("--serve-n", type=int, default=48, help="requests per concurrency in the serve part")
    parser.add_argument("--tiers-run", type=Path, help="the run whose tiers the tiers part times (default: the demo's)")
    parser.add_argument("--tiers-n", type=int, default=200, help="test examples of the tiers part")
    parser.add_argument(
        "--router-only",
        nargs="+",
        choices=ROUTER_PARTS,
        help="some parts of the router benchmark (the manual's router block keeps the last full run)",
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument(
        "--readme", type=Path, help="replace the table between the bench markers of this page (docs/speed.md)"
    )
    parser.add_argument("--render-only", action="store_true", help="measure nothing: render --out's results")
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=TRAIN_SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.child_out.write_text(json.dumps(CHILDREN[args.child](args), indent=2) + "\n")
        return
    if args.render_only:
        finish(json.loads(args.out.read_text()), args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results = json.loads(args.out.read_text()) if args.out.is_file() and set(args.only) != set(PARTS) else {}
    results["machine"] = describe_machine()
    started = dt.datetime.now(dt.UTC)
    results["date"] = started.strftime("%Y-%m-%d %H:%M UTC")
    if "matmul" in args.only:
        results["matmul"] = run_child("matmul", args)
    if "train" in args.only:
        results["train"] = {s: run_child("train", args, "--setting", s) for s in TRAIN_SETTINGS}
    if "demo" in args.only:
        results["demo"] = run_demo(args)
    if "classify" in args.only:
        results["classify"] = run_child("classify", args, "--classify-recipe", args.recipe)
        if (REPO.parent / "shared" / "data" / "banking77").is_dir():
            results["classify_wide"] = run_child("classify", args, "--classify-recipe", args.wide_recipe)
    if "generate" in args.only:
        results["generate"] = run_child("generate", args)
    if "encoder" in args.only and (REPO.parent / "shared" / "data" / "banking77").is_dir():
        results["encoder_full"] = run_child("encoder", args)
    if "profile" in args.only and (args.work / "demo" / "adapter").is_dir():
        results["profile"] = run_child("profile", args)
    if "serve" in args.only and "demo" in results:
        results["serve"] = run_serve(args, results["demo"])
    if "tiers" in args.only and ((args.tiers_run or args.work / "demo") / "encoder" / "training.json").is_file():
        tiers = run_child("tiers", args)
        results["tiers" if args.tiers_run is None else f"tiers_{tiers['recipe']}"] = tiers
    if "router" in args.only and (args.work / "demo" / "metrics.json").is_file():
        results["router"] = run_router(args, args.work / "demo")
    if "monitor" in args.only and (args.work / "demo" / "metrics.json").is_file():
        out = Path(args.work) / "monitor.json"
        subprocess.run([sys.executable, "scripts/bench_monitor.py", "--run", str(args.work / "demo"), "--out",
                        str(out), "--work", str(Path(args.work) / "monitor")], check=True, cwd=REPO)  # fmt: skip
        results["monitor"] = json.loads(out.read_text())
    if "distill" in args.only and (args.work / "demo" / "metrics.json").is_file():
        out = Path(args.work) / "distill.json"
        page = ["--page", str(args.readme.with_name("distillation.md"))] if args.readme else []
        subprocess.run([sys.executable, "scripts/bench_distill.py", "--run", str(args.work / "demo"), "--out",
                        str(out), "--work", str(Path(args.work) / "distill"), *page], check=True, cwd=REPO)  # fmt: skip
        results["distill"] = json.loads(out.read_text())
    results["bench_wall_s"] = round(time.perf_counter() - began, 1)
    results["invocations"] = invocations(results.get("invocations", []), args.only, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    finish(results, args)


def finish(results: dict, args) -> None:
    """bench/results.md, and with --readme the page's two blocks: the speed table (bench markers) and the
    router's figures (bench-router markers), each replaced only when this run has its figures."""
    table = render_table(results)
    router = "\n".join(router_rows(results.get("router")))
    monitor_table = "\n".join(monitor_rows(results.get("monitor")))
    (args.out.parent / "results.md").write_text(table + "\n" + router + "\n" + monitor_table)
    print(table + "\n" + router + "\n" + monitor_table)
    if args.readme and any(part in results for part in PARTS if part not in ("router", "monitor", "distill")):
        replace_block(args.readme, table, "bench")
    full_router = results.get("router", {}).get("parts", ROUTER_PARTS) == ROUTER_PARTS
    if args.readme and router and full_router:
        replace_block(args.readme, f"Measured {results['date']} on {results['machine']}.\n\n{router}", "bench-router")
    monitor = "\n".join(monitor_rows(results.get("monitor")))
    if args.readme and monitor:  # the monitor's page, beside the speed page
        page = args.readme.with_name("monitor.md")
        when = results["monitor"].get("date", results["date"])
        replace_block(page, f"Measured {when} on {results['machine']}.\n\n{monitor}", "bench-monitor")


def invocations(earlier: list[dict], parts: list[str], started: dt.datetime) -> list[dict]:
    """When each part's figures were measured: this invocation's parts and time span, after the earlier ones
    less the parts it measured again (an invocation left with none is dropped)."""
    kept = [{**item, "parts": [p for p in item["parts"] if p not in parts]} for item in earlier]
    span = f"{started:%Y-%m-%d %H:%M}-{dt.datetime.now(dt.UTC):%H:%M} UTC"
    return [item for item in kept if item["parts"]] + [{"parts": list(parts), "span": span}]


def describe_machine() -> str:
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").open() if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def render_table(results: dict) -> str:
    """The Markdown docs/speed.md shows: every speed figure with its ratio and the quality it came with."""
    runs = results.get("invocations") or []
    if len(runs) > 1:  # parts measured again on their own: say which figure is from when
        when = "; ".join(f"{', '.join(item['parts'])}: {item['span']}" for item in runs)
        lines = [f"Measured on {results['machine']} by {len(runs)} invocations of `scripts/bench.py` ({when}).", ""]
    else:
        parts = runs[0]["parts"] if runs else PARTS
        how = "`make bench`" if set(parts) >= set(PARTS) else f"`scripts/bench.py --only {' '.join(parts)}`"
        lines = [
            f"Measured {results['date']} on {results['machine']} "
            f"({how}, {results.get('bench_wall_s', 0) / 60:.0f} min in all).",
            "",
        ]
    matmul = results.get("matmul") or {}
    if matmul:
        lines += [
            f"Matmul peak, measured with the training: {matmul['fp32_gflops']:.0f} GFLOP/s fp32, "
            f"{matmul['bf16_gflops']:.0f} GFLOP/s bf16.",
            "",
        ]
    lines += target_rows(results)
    lines += training_rows(results.get("train"), results.get("demo"), matmul)
    for key in ("classify", "classify_wide", "generate"):
        block = results.get(key)
        if block:
            lines += prediction_rows(block)
    for tiers in [block for key, block in sorted(results.items()) if key.startswith("tiers")]:
        lines += [
            f"**Encoder tier vs SLM tier** (`{tiers['recipe']}`, the run's fine-tuned weights, {tiers['n']} test "
            "examples; per request = one request at a time, each request's own latency):",
            "",
            "| tier | model | per-request p50 / p95 ms | batched examples/s (batch) | accuracy |",
            "|---|---|---|---|---|",
        ]
        for name in ("encoder", "slm"):
            row = tiers[name]
            lines.append(
                f"| {name} | {row['model']} | {row['per_request_p50_ms']:.0f} / {row['per_request_p95_ms']:.0f} "
                f"| {row['batched_examples_per_s']:.1f} ({row['batch_size']}) | {100 * row['accuracy']:.1f}% |"
            )
        lines.append("")
    demo = results.get("demo")
    if demo:
        accuracy = ", ".join(f"{k} {100 * v:.1f}%" for k, v in demo["accuracy"].items())
        lines += [
            f"**`make demo`** end to end: {demo['wall_s'] / 60:.1f} min, peak RSS {demo['peak_rss_mb']:,} MB; "
            f"test accuracy {accuracy}; verdict `{demo['verdict']}`.",
            "",
        ]
    serve = results.get("serve")
    if serve:
        lines += [
            "**LLM-tier client against `slmtier serve`** (the demo's SLM on loopback, "
            f"{serve['n']} requests per concurrency):",
            "",
            "| client concurrency | requests/s | ratio | p50 / p95 ms |",
            "|---|---|---|---|",
        ]
        for row in serve["results"]:
            latency = f"{row['latency_ms_p50']:.0f} / {row['latency_ms_p95']:.0f}"
            lines.append(
                f"| {row['concurrency']} | {row['requests_per_s']:.2f} | {row['throughput_ratio']:.2f} | {latency} |"
            )
        lines.append("")
    return "\n".join(lines)


TARGETS = {"training_vs_trl": 3.0, "training_peak_share": 0.5, "label_scoring": 10.0, "encoder_accuracy": 0.93,
           "encoder_train_s": 600, "router_p95_ms": 25.0, "router_c32_share": 0.7}  # fmt: skip


def target_rows(results: dict) -> list[str]:
    """The performance targets (docs/speed.md), each with its ratio, the same-run reference and the quality it
    was measured with; a target this run did not measure is left out."""
    rows = []

    def add(target, goal, measured, reference, quality, met):
        rows.append(f"| {target} | {goal} | {measured} | {reference} | {quality} | {'yes' if met else '**no**'} |")

    train, demo, matmul = results.get("train"), results.get("demo"), results.get("matmul") or {}
    if train and demo:
        trl = train["trl_plain"]
        ratio = demo["training_tokens_per_s"] / trl["tokens_per_s"]
        ours = demo["validation_accuracy"].get("slm")
        quality = f"validation {100 * ours:.1f}% vs {100 * trl['validation_accuracy']:.1f}%" if ours else "–"
        add("LoRA training, useful tokens/s vs TRL's SFTTrainer as it comes", f">= {TARGETS['training_vs_trl']:.0f}x",
            f"{ratio:.2f}x ({demo['training_tokens_per_s']:.0f})", f"{trl['tokens_per_s']:.0f} tokens/s (fp32)",
            quality, ratio >= TARGETS["training_vs_trl"])  # fmt: skip
        if matmul:
            gflops = 4 * train["reference"]["body_params_m"] * 1e6 * demo["training_tokens_per_s"] / 1e9
            bf16, best = matmul["bf16_gflops"], max(matmul["bf16_gflops"], matmul["fp32_gflops"])
            dtype = "bf16" if demo.get("training_bf16", True) else "fp32"
            add("LoRA training, model FLOP/s over the matmul peak", f">= {100 * TARGETS['training_peak_share']:.0f}%",
                f"{100 * gflops / best:.0f}% of the machine's best ({gflops:.0f} GFLOP/s in {dtype}); "
                f"{100 * gflops / bf16:.0f}% of bf16's", f"peak {matmul['fp32_gflops']:.0f} fp32, {bf16:.0f} bf16",
                "same run as above", gflops / best >= TARGETS["training_peak_share"])  # fmt: skip
    classify = results.get("classify")
    if classify and "label_scoring" in classify:
        base, scored = classify["generate_per_example"], classify["label_scoring"]
        ratio = scored["examples_per_s"] / base["examples_per_s"]
        named = [d for d in classify.get("differences", []) if d["generated"] is not None]
        add(f"label scoring vs generate() one at a time (`{classify['recipe']}`)",
            f">= {TARGETS['label_scoring']:.0f}x",
            f"{ratio:.1f}x ({scored['examples_per_s']:.1f}/s)", f"{base['examples_per_s']:.2f} examples/s",
            f"accuracy {100 * scored['accuracy']:.1f}% vs {100 * base['accuracy']:.1f}%; differs where greedy named a "
            f"label: {len(named)} of {classify['n']}", ratio >= TARGETS["label_scoring"] and not named)  # fmt: skip
    encoder = results.get("encoder_full")
    if encoder:
        low, high = encoder["accuracy_ci"]
        met = encoder["accuracy"] >= TARGETS["encoder_accuracy"]
        met = met and encoder["train_wall_s"] <= TARGETS["encoder_train_s"]
        add(f"encoder tier on `{encoder['recipe']}` at full size ({encoder['train_examples']:,} rows)",
            f">= {100 * TARGETS['encoder_accuracy']:.0f}% in <= {TARGETS['encoder_train_s'] / 60:.0f} min",
            f"{100 * encoder['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] in "
            f"{encoder['train_wall_s'] / 60:.1f} min",
            f"{encoder['epochs']:.0f} epochs, {encoder['examples_per_s']:.0f} examples/s",
            f"{encoder['test_examples']:,} test examples, 95% bootstrap CI", met)  # fmt: skip
    latency = (results.get("router") or {}).get("encoder_latency")
    if latency:
        single, wide = latency["concurrency_1"], latency["concurrency_32"]
        offline = latency["offline_batched_32_requests_per_s"]
        parity = next((r for r in results["router"].get("parity", []) if r["tier"] == "encoder"), None)
        quality = f"same answer as the benchmark on {100 * parity['identical_share']:.1f}%" if parity else "–"
        add("router, encoder tier: p95 one request at a time", f"<= {TARGETS['router_p95_ms']:.0f} ms",
            f"{single['p95_ms']:.1f} ms", f"direct call p50 {latency['direct_one_at_a_time']['p50_ms']:.1f} ms",
            quality, single["p95_ms"] <= TARGETS["router_p95_ms"])  # fmt: skip
        add("router, encoder tier: requests/s at concurrency 32 vs offline batches",
            f">= {TARGETS['router_c32_share']}",
            f"{wide['requests_per_s'] / offline:.2f} ({wide['requests_per_s']:.0f}/s)", f"offline {offline:.0f}/s",
            quality, wide["requests_per_s"] / offline >= TARGETS["router_c32_share"])  # fmt: skip
    if not rows:
        return []
    lines = ["**Targets** (each measured against the reference beside it, in the same invocation):", "",
             "| target | goal | measured | same-run reference | quality | met |", "|---|---|---|---|---|---|",
             *rows, "", "GPU: `scripts/gpu_check.py` runs apart, on a CUDA machine (see GPU below).", ""]  # fmt: skip
    profile = results.get("profile")
    if profile:
        for part, label in (("training", "SLM training (steps 3-6)"), ("label_scoring", "label scoring")):
            ops = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in profile.get(part, []))
            lines.append(f"Where the time goes, {label}, {'bf16' if profile.get('bf16') else 'fp32'}: {ops}.")
        lines.append("")
    return lines


def router_rows(router: dict | None) -> list[str]:
    """`slmtier route`: parity with the benchmark, the encoder's latency and throughput, the live cascade, load."""
    if not router:
        return []
    lines = ["**`slmtier route`** (each request as an application sends it: the input alone; HTTP on loopback):", ""]
    if router.get("parity"):
        lines += ["| parity: recipe, tier | test examples | same answer as the benchmark | largest confidence gap |",
                  "|---|---|---|---|"]  # fmt: skip
        for row in router["parity"]:
            gap = "–" if row["max_confidence_gap"] is None else f"{row['max_confidence_gap']:.1e}"
            lines.append(f"| {row['recipe']}, {row['tier']} | {row['n']} | {row['identical']} "
                         f"({100 * row['identical_share']:.1f}%) | {gap} |")  # fmt: skip
        lines.append("")
    numerics = router.get("numerics")
    if numerics:
        bf16, fp32 = numerics["bf16"], numerics["fp32"]
        lines += [
            f"Why generated answers can differ (`{numerics['recipe']}`, {numerics['n']} test emails answered in "
            f"batches of {bf16['batch_size']} and one at a time): identical answers {bf16['same_batched_and_single']}"
            f" of {numerics['n']} under bf16 autocast, {fp32['same_batched_and_single']} of {numerics['n']} in "
            f"fp32; batched speed {bf16['batched_requests_per_s']:.2f} vs {fp32['batched_requests_per_s']:.2f} "
            "requests/s.",
            "",
        ]
    latency = router.get("encoder_latency")
    if latency:
        direct = latency["direct_one_at_a_time"]
        lines += [
            f"Encoder tier through the router ({latency['n']} test tickets; offline = the same examples in batches of "
            f"32 in one process: {latency['offline_batched_32_requests_per_s']:.0f} requests/s; calling the tier's "
            f"answer function directly, one at a time: p50 {direct['p50_ms']:.1f} ms; the model's CPU time per "
            f"request in batches: {latency['offline_cpu_ms_per_request']:.1f} ms; the client, a bare asyncio HTTP "
            "client, shares the two cores with the router):",
            "",
            "| client concurrency | requests/s | vs offline | p50 / p95 ms | CPU ms per request: router, client "
            "| others' CPU share |",
            "|---|---|---|---|---|---|",
        ]
        offline = latency["offline_batched_32_requests_per_s"]
        for concurrency in (1, 8, 32):
            row = latency[f"concurrency_{concurrency}"]
            cpu = f"{row['router_cpu_ms_per_request']:.1f}, {row.get('client_cpu_ms_per_request', float('nan')):.2f}"
            others = row.get("others_cpu_share")
            lines.append(f"| {concurrency} | {row['requests_per_s']:.1f} | {row['requests_per_s'] / offline:.2f} | "
                         f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} | {cpu} | "
                         f"{'–' if others is None else f'{100 * others:.0f}%'} |")  # fmt: skip
        lines += ["", f"Router overhead at concurrency 1 (client p50 minus the direct call's): "
                      f"{latency['overhead_p50_ms']:.1f} ms.", ""]  # fmt: skip
    cascade = router.get("cascade_live")
    if cascade:
        lines += [
            f"Live cascade ({cascade['via']} first, `transformers serve` of the base model as the LLM, threshold "
            f"{cascade['threshold']:.4f}, {cascade['n']} test tickets): escalation rate "
            f"{100 * cascade['live_escalation_rate']:.1f}% live vs {100 * cascade['benchmark_escalation_rate']:.1f}% "
            f"in the benchmark; accuracy {100 * cascade['live_quality']:.1f}% live vs "
            f"{100 * cascade['benchmark_quality']:.1f}%.",
            "",
        ]
    load = router.get("load")
    if load:
        lines += [
            f"Load: {load['requests']:,} requests at concurrency {load['concurrency']}, every one escalated, the LLM "
            f"answering {sum(load['llm_faults_injected'].values())} attempts with faults "
            f"({', '.join(f'{k} {v}' for k, v in load['llm_faults_injected'].items())}): {load['lost']} lost, "
            f"{load['server_errors_5xx']} 5xx, {load['local_answer_marked_llm_error']} answered locally and marked, "
            f"{load['logged_exactly_once']:,} logged exactly once ({load['logged_missing']} missing, "
            f"{load['logged_twice_or_more']} twice); {load['requests_per_s']:.1f} requests/s, p95 "
            f"{load['p95_ms']:.0f} ms; router RSS {load['rss_before_mb']:.0f} → {load['rss_after_mb']:.0f} MB "
            f"({100 * load['rss_growth']:+.1f}%).",
            "",
        ]
    return lines


def training_rows(train: dict | None, demo: dict | None, matmul: dict) -> list[str]:
    if not train:
        return []
    reference = train["reference"]["tokens_per_s"]
    slm = demo and {
        "tokens_per_s": demo["training_tokens_per_s"], "peak_rss_mb": demo["peak_rss_mb"],
        "dtype": "bf16" if demo.get("training_bf16", True) else "fp32",
        "steps": demo["training_steps"], "train_loss": demo["train_loss"],
        "validation_accuracy": demo["validation_accuracy"].get("slm"),
    }  # fmt: skip
    rows = [
        ("reference: Trainer + peft, fp32, padded to max_length", train["reference"]),
        ("TRL SFTTrainer as it comes, fp32", train["trl_plain"]),
        (f"**slmtier defaults** (the demo's training, {slm['dtype'] if slm else ''})", slm),
    ]
    body = train["reference"]["body_params_m"] * 1e6
    lines = [
        "**Training** (`ticket_classifier`, SmolLM2-135M, LoRA r=16 on all projections, batch 8; useful = "
        "non-padding tokens; MFU = 4 FLOPs per body weight and useful token over the matmul peak of the dtype):",
        "",
        "| setting | steps | useful tokens/s | ratio | MFU | peak RSS | train loss | validation accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows:
        if not row:
            continue
        dtype = "bf16" if row["dtype"].startswith("bf16") else "fp32"
        peak = matmul.get(f"{dtype}_gflops")
        mfu = f"{100 * 4 * body * row['tokens_per_s'] / 1e9 / peak:.0f}% ({dtype})" if peak else "–"
        accuracy = row.get("validation_accuracy")
        shown = f"{100 * accuracy:.1f}%" if accuracy is not None else "– (too few steps)"
        lines.append(
            f"| {label} | {row['steps']} | {row['tokens_per_s']:.0f} | {row['tokens_per_s'] / reference:.2f} | "
            f"{mfu} | {row['peak_rss_mb']:,} MB | {row['train_loss']:.3f} | {shown} |"
        )
    return [*lines, ""]


def prediction_rows(block: dict) -> list[str]:
    metric = "accuracy" if "accuracy" in block["generate_per_example"] else "micro_f1"
    base = block["generate_per_example"]["examples_per_s"]
    title = "Classification" if metric == "accuracy" else "Extraction"
    lines = [
        f"**{title} prediction** (`{block['recipe']}`, {block.get('model', 'untuned')} model, "
        f"{block['n']} test examples):",
        "",
        f"| method | examples/s | ratio | {metric} |",
        "|---|---|---|---|",
    ]
    for method in ("generate_per_example", "generate_batched", "label_scoring"):
        if method in block:
            row = block[method]
            speed = row["examples_per_s"]
            lines.append(f"| {method.replace('_', ' ')} | {speed:.2f} | {speed / base:.1f} | {row[metric]:.3f} |")
    if "differences" in block:
        invalid = sum(d["generated"] is None for d in block["differences"])
        lines.append(
            f"\nLabel scoring and per-example generation disagree on {len(block['differences'])} of {block['n']} "
            f"({invalid} where generation named no label)."
        )
    return [*lines, ""]


SCENARIOS = {
    "undrifted": "undrifted (false alarms)",
    "a_label_shift": "(a) one label's share x4",
    "b_new_inputs": "(b) 30% inputs of another domain",
    "c_degraded_tier": "(c) encoder head with noise",
    "d_changed_llm": "(d) LLM wrong on 40%, was 2%",
}
DOMAINS = {
    "tickets": "`ticket_classifier`, the demo's encoder; windows drawn from the 160 test tickets (so they overlap), "
    "the reference the 80 validation tickets; (b) from banking77",
    "banking77": "banking77, an encoder trained on its train split; windows drawn from half of its test split "
    "(1,540 messages), the reference the validation split and the other half (2,040); (b) from clinc150",
}


def monitor_rows(monitor: dict | None) -> list[str]:
    """scripts/bench_monitor.py: alarms per window per scenario and domain, the re-fit after the degraded tier."""
    if not monitor or "domains" not in monitor:
        return []
    lines = [
        f"**`slmtier monitor` by simulation**: each domain's encoder cascade against a stand-in LLM (wrong on 2%), "
        f"served through `slmtier route`, {monitor['windows']} windows per scenario, "
        f"{monitor.get('shadow_rate', 0.5):.0%} of the local answers shadowed; a window alarms when any statistical "
        "check fires, at the default false-alarm budget of 5% per window.",
    ]
    for domain, outcome in monitor["domains"].items():
        cascade = outcome["cascade"]
        lines += [
            "",
            f"*{DOMAINS.get(domain, domain)}* (threshold {cascade['threshold']:.4f}, "
            f"{100 * cascade['expected_escalation_rate']:.1f}% escalated in the benchmark):",
            "",
            "| scenario | requests per window | windows with an alarm (95% CI) | first alarm (window) | checks that "
            "fired (windows) |",
            "|---|---|---|---|---|",
        ]
        for key, label in SCENARIOS.items():
            row = outcome.get(key)
            if not row:
                continue
            low, high = row["alarm_share_interval"]
            fired = ", ".join(f"{name} {count}" for name, count in sorted(row["checks_fired"].items())) or "–"
            first = "–" if row["first_alarm_window"] is None else str(row["first_alarm_window"] + 1)
            lines.append(f"| {label} | {row['window_size']} | {row['alarms']} of {row['windows']} "
                         f"({100 * low:.0f}-{100 * high:.0f}%) | {first} | {fired} |")  # fmt: skip
        refit = outcome.get("refit_after_c")
        if refit:
            after, bench = refit["quality_after"], refit["benchmark_quality"] or 0
            threshold = "–" if refit["threshold_after"] is None else f"{refit['threshold_after']:.4f}"
            lines += [
                "",
                f"Re-fit after (c), on {refit['pairs']:,} logged pairs: threshold {refit['threshold_before']:.4f} -> "
                f"{threshold}; the cascade's accuracy on the replayed inputs against gold "
                f"{100 * refit['quality_before']:.1f}% before, {'–' if after is None else f'{100 * after:.1f}%'} "
                f"after, against the benchmark's cascade {100 * bench:.1f}% (margin {refit['margin']}). "
                f"Advice: {refit['advice']}",
            ]
    month = monitor.get("month")
    if month:
        lines += [
            "",
            f"A month of logs: {month['requests']:,} requests ({month['records']:,} records with the shadow answers) "
            f"in {month['files']:,} hourly files of two replicas, {month['log_gb']} GB of JSON lines: `slmtier monitor "
            f"--window 1d` read and judged them ({month['windows']} windows) in {month['monitor_wall_s']:.0f} s, "
            f"peak RSS {month['peak_rss_mb']:,} MB{month.get('when', '')}.",
        ]
    return lines


def replace_block(readme: Path, table: str, marker: str) -> None:
    text = readme.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text:
        raise SystemExit(f"{readme}: no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
