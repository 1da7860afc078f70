"""The run directory contract: the files each stage writes and later stages (and reports) read.

config.yaml              resolved config
adapter/                 PEFT adapter (safetensors) and tokenizer
encoder/                 the encoder tier's fine-tuned weights, tokenizer, calibration.json, training.json
predictions/<name>.jsonl one row per test example and candidate
metrics.json             recipe, task_kind, data, training, candidates, decision
report.md, report.html   rebuilt by `slmtier report RUN_DIR` from the files above

`check_run_files` is what a report checks first: a run that stopped early lacks metrics.json, and a
report refuses it rather than render a half-run.
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
    return write_json_atomic(run_dir / "metrics.json", metrics)


def write_json_atomic(path: Path, data: dict) -> Path:
    """Write to a temporary name and rename: a reader (or a resumed run) never sees half a file."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def check_run_files(run_dir: Path) -> None:
    """Refuse, naming the file (and line), a run directory whose files a report cannot trust: a missing
    config.yaml or metrics.json (the run stopped early), metrics.json that is not one JSON object, or a
    predictions file cut short. Checked before any report is rewritten, so nothing is left half-written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory; pass a run directory such as runs/<recipe>/<model>/<time>")
    missing = [name for name in ("config.yaml", "metrics.json") if not (run_dir / name).is_file()]
    if missing:
        raise RunDirError(f"{run_dir}: missing {missing}; was the run interrupted before it finished?")
    metrics = _read_json(run_dir / "metrics.json")
    if not isinstance(metrics, dict):
        raise RunDirError(f"{run_dir / 'metrics.json'}: expected one JSON object, got {type(metrics).__name__}")
    for name in metrics.get("candidates") or {}:
        path = run_dir / "predictions" / f"{name}.jsonl"
        if not path.is_file():
            raise RunDirError(f"{path}: missing; metrics.json lists candidate {name!r}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise RunDirError(f"{path}: not valid UTF-8 ({err.reason}); rerun train.py for this run") from err
        for line_no, line in enumerate(lines, start=1):
            if line.strip() and not isinstance(_parse_line(line), dict):
                raise RunDirError(
                    f"{path}:{line_no}: not valid JSON (the file was cut short or edited); rerun train.py for this run"
                )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path}: not valid JSON ({err}); rerun train.py for this run") from err


def _parse_line(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


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
