"""`python train.py recipe=<name>`: fine-tune the SLM, benchmark it against the baseline, decide, report.

Each stage writes its files into the run directory (Hydra's output dir,
runs/<recipe>/<model>/<timestamp>/); `slmtier report RUN_DIR` rebuilds the reports from them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from slmtier.cli.errors import exit_on_user_error
from slmtier.config import CONFIG_DIR, RunConfig, register_configs, to_run_config
from slmtier.data import load_splits, report_long_inputs
from slmtier.errors import NoVerdict
from slmtier.pipeline import (
    SLM,
    build_candidates,
    check_base_model,
    check_config,
    check_logged_answers,
    check_resumable,
    load_base_model,
    run_benchmark,
    run_encoder,
    run_training,
    summarise_run,
)
from slmtier.report import complete_reports, write_reports
from slmtier.run_dir import disk_full_as_error, write_config, write_metrics
from slmtier.tasks import build_task
from slmtier.tracking import log_run, sweep_objective
from slmtier.training import is_main_process

register_configs()
# bitsandbytes (imported by peft) warns on every CPU start that an optional 4-bit kernel package is
# missing; slmtier does not use 4-bit on CPU, so the warning is noise to users.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(dict_cfg: DictConfig) -> float | None:
    """Returns the SLM's validation score: the objective a Hydra sweeper (Optuna) maximises."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # A full disk (checkpoints, caches, prediction rows, reports) ends the run with one message naming it.
    with exit_on_user_error(), disk_full_as_error(run_dir, Path(str(dict_cfg.cache_dir))):
        cfg: RunConfig = to_run_config(dict_cfg)
        recipe = HydraConfig.get().runtime.choices["recipe"]

        # --- Config and data: every row checked before any model is loaded
        check_config(cfg)  # before config.yaml is written: a key pasted into a config value is refused first
        # A rerun in the same run directory (hydra.run.dir, a sweep's job folder) resumes an interrupted run.
        finished = check_resumable(OmegaConf.to_yaml(dict_cfg, resolve=True), run_dir)
        if finished is not None:
            rewritten = complete_reports(run_dir)  # a report cut short by a full disk is written again
            done = f"rewrote {', '.join(rewritten)}" if rewritten else "nothing to redo"
            print(f"run directory: {run_dir} (finished earlier; {done})")
            return sweep_objective(finished)
        if is_main_process():
            write_config(dict_cfg, run_dir)
        task = build_task(cfg.task)
        splits = load_splits(cfg.data, task.check_target)
        report_long_inputs(splits, cfg.task.max_input_words)
        check_logged_answers(cfg, splits)
        check_base_model(cfg)

        # --- Fine-tune the local tiers: the encoder (calibrated on validation), the SLM (LoRA; adapter saved).
        # The encoder first: a fresh process trains it at full speed (after the SLM's long-prompt training it
        # trained 1.4x slower in the same process on banking77).
        encoder, encoder_entry = run_encoder(cfg, splits, run_dir)
        model, tokenizer = load_base_model(cfg)  # the SLM's base; also the default baseline's model
        peft_model, training = model, None
        if SLM in cfg.tiers:
            peft_model, training = run_training(cfg, task, splits, model, tokenizer, run_dir)
        if not is_main_process():  # multi-process training (torchrun / accelerate launch): rank 0 carries on
            return

        # --- Benchmark every tier and the baseline on the test split
        candidates = build_candidates(cfg, task, splits, peft_model, tokenizer, encoder)
        benchmark = run_benchmark(
            task, candidates, splits, run_dir / "predictions",
            extra_metrics=cfg.task.extra_metrics, validation=cfg.decision.cascade,
        )  # fmt: skip

        # --- Decide and report
        metrics = summarise_run(cfg, recipe, task, splits, training, benchmark, encoder_entry)
        write_metrics(metrics, run_dir)
        write_reports(run_dir)
        log_run(
            cfg.tracking.report_to,
            run_dir=run_dir,
            metrics=metrics,
            config=OmegaConf.to_container(dict_cfg, resolve=True),
        )
        print(f"run directory: {run_dir}")
        print(f"verdict: {metrics['decision']['verdict']} ({metrics['decision']['reason']})")
        if metrics["decision"]["verdict"] == "undecided":
            raise NoVerdict(f"{run_dir}: {metrics['decision']['reason']}")
        return sweep_objective(metrics)
