"""The run directory contract: the files each stage writes and later stages (and reports) read.

config.yaml              resolved config
adapter/                 PEFT adapter (safetensors) and tokenizer
predictions/<name>.jsonl one row per test example and candidate
metrics.json             recipe, task_kind, data, training, candidates, decision
report.md, report.html   rebuilt by `slmtier report RUN_DIR` from the files above
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slmtier.config import RunConfig, to_run_config
from slmtier.errors import RunDirError


def write_config(cfg: DictConfig, run_dir: Path) -> Path:
    path = run_dir / "config.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    return path


def write_metrics(metrics: dict, run_dir: Path) -> Path:
    """Atomic write: a reader never sees half a metrics.json."""
    path = run_dir / "metrics.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_run_config(run_dir: Path) -> RunConfig:
    """The typed config a run was made with (its config.yaml, checked against today's schema)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{path}: missing; pass a run directory such as runs/<recipe>/<model>/<time>")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.load(path))
    except OmegaConfBaseException as err:
        raise RunDirError(f"{path}: does not match this slmtier version's config schema ({err})") from err
    return to_run_config(merged)
