"""`python train.py recipe=<name>`: fine-tune the local tiers, benchmark them against the LLM, decide, report.

Each stage writes its files into the run directory (Hydra's output dir,
runs/<recipe>/<model>/<timestamp>/); `slmtier report RUN_DIR` rebuilds the reports from them.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from slmtier.cli.errors import exit_on_user_error
from slmtier.config import CONFIG_DIR, RunConfig, register_configs, to_run_config
from slmtier.data import load_splits, report_long_inputs
from slmtier.data.log_import import logged_targets
from slmtier.errors import NoVerdict
from slmtier.report import complete_reports, write_reports
from slmtier.run_dir import RunDir, disk_full_as_error
from slmtier.tasks import build_task
from slmtier.tracking import log_run, sweep_objective

register_configs()
# bitsandbytes (imported by peft) warns on every CPU start that an optional 4-bit kernel package is
# missing; slmtier does not use 4-bit on CPU, so the warning is noise to users.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(dict_cfg: DictConfig) -> float | None:
    """Returns the SLM's validation score: the objective a Hydra sweeper (Optuna) maximises."""
    # The modules that bring torch, transformers, peft and datasets (seconds to import) come after Hydra has
    # composed and checked the config: a mistyped key or option ends the command at once.
    from slmtier.baselines import teacher
    from slmtier.baselines.tier import build_llm_tier, check_logged_answers, record_llm_tier
    from slmtier.benchmark.run import run_benchmark, summarise_run
    from slmtier.preflight import check_config
    from slmtier.tiers import TIERS, requested, slm
    from slmtier.training import is_main_process

    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    # A full disk (checkpoints, caches, prediction rows, reports) ends the run with one message naming it.
    with exit_on_user_error(), disk_full_as_error(run_dir.path, Path(str(dict_cfg.cache_dir))):
        cfg: RunConfig = to_run_config(dict_cfg)

        # --- Config and data: every row checked before any model is loaded
        check_config(cfg)  # before config.yaml is written: a key pasted into a config value is refused first
        # A rerun in the same run directory (hydra.run.dir, a sweep's job folder) resumes an interrupted run.
        finished = run_dir.check_resumable(OmegaConf.to_yaml(dict_cfg, resolve=True))
        if finished is not None:
            rewritten = complete_reports(run_dir.path)  # a report cut short by a full disk is written again
            done = f"rewrote {', '.join(rewritten)}" if rewritten else "nothing to redo"
            print(f"run directory: {run_dir.path} (finished earlier; {done})")
            return sweep_objective(finished)
        if is_main_process():
            run_dir.write_config(dict_cfg)
        task = build_task(cfg.task)
        splits = load_splits(cfg.data, task.check_target)
        report_long_inputs(splits, cfg.task.max_input_words)
        check_logged_answers(cfg, splits)
        slm.check_base_model(cfg)
        base = functools.cache(lambda: slm.load_base_model(cfg))
        # `slmtier import-logs` files hold the LLM's answers; a teacher gives its own; else the rows' gold.
        targets = logged_targets(cfg.data.train, cfg.data.test) or {"source": "gold"}
        if teacher.needs_teacher(cfg):  # distillation: the LLM tier answers the train and validation inputs
            splits = teacher.check_shots(cfg, splits)
            splits, targets = teacher.teach(cfg, task, splits, teacher.build_teacher(cfg, splits))
        cfg, generation = slm.fit_generation_budget(cfg, task, splits)  # inference.max_new_tokens: null = from the task

        # --- Train each local tier, or resume it, or load its finished training (the encoder first: a fresh
        # process trains it at full speed). The SLM's base model is loaded once, for the SLM and the LLM tier.
        tiers = {name: TIERS[name].prepare(cfg, task, splits, run_dir.path, base=base) for name in requested(cfg)}
        if not is_main_process():  # multi-process training (torchrun / accelerate launch): rank 0 carries on
            return

        # --- Benchmark every tier and the LLM on the test split
        shared = tiers[slm.NAME].candidate if slm.NAME in tiers else None  # the LLM tier may reuse its weights
        model, tokenizer = (shared.hf_model, shared.tokenizer) if shared else base()
        candidates = [prepared.candidate for prepared in tiers.values()]
        candidates.append(build_llm_tier(cfg, splits, model, tokenizer))
        record_llm_tier(cfg, splits, run_dir.path)  # a router asks it again as it was asked here
        benchmark = run_benchmark(task, candidates, splits, run_dir.predictions,
                                  extra_metrics=cfg.task.extra_metrics, validation=cfg.decision.cascade)  # fmt: skip

        # --- Decide and report
        metrics = summarise_run(cfg, HydraConfig.get().runtime.choices["recipe"], task, splits, tiers, benchmark,
                                generation=generation, targets=targets)  # fmt: skip
        run_dir.write_metrics(metrics)
        write_reports(run_dir.path)
        log_run(cfg.tracking.report_to, run_dir=run_dir.path, metrics=metrics,
                config=OmegaConf.to_container(dict_cfg, resolve=True))  # fmt: skip
        print(f"run directory: {run_dir.path}")
        print(f"verdict: {metrics.verdict} ({metrics.decision.reason})")
        if metrics.verdict == "undecided":
            raise NoVerdict(f"{run_dir.path}: {metrics.decision.reason}")
        return sweep_objective(metrics)
