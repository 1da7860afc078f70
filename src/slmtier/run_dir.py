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

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slmtier.config import RunConfig, to_run_config
from slmtier.errors import DiskFull, RunDirError, SlmtierError


def write_config(cfg: DictConfig, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def write_metrics(metrics: dict, run_dir: Path) -> Path:
    return write_json_atomic(run_dir / "metrics.json", metrics)


def write_json_atomic(path: Path, data: dict) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write to a temporary name, flush it to disk, and rename: a reader (or a resumed run) never sees half a
    file, whether the writer is killed or the disk fills up (the temporary file is then removed)."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


# torch.save and safetensors report a write that ran out of space without its errno.
WRITE_FAILED = ("unexpected pos", "failed writing", "file write failed", "no space left", "storagefull")
NEARLY_FULL_BYTES = 64 * 2**20


@contextlib.contextmanager
def disk_full_as_error(*folders: Path):
    """A write that fails for want of space becomes one DiskFull message naming the folder whose disk is full,
    whichever library was writing (a checkpoint, a dataset cache, prediction rows, a report)."""
    try:
        yield
    except Exception as err:
        folder = full_folder(err, [Path(f).expanduser() for f in folders])
        if folder is None:
            raise
        raise DiskFull(
            f"no space left on the disk holding {folder} ({_free_mb(folder):.0f} MB free): free some space "
            f"(`df -h {folder}`) and rerun the same command; the run resumes from its last complete checkpoint "
            "and the prediction rows already saved, and files cut short are written again"
        ) from err


def full_folder(err: BaseException, folders: list[Path]) -> Path | None:
    """The folder a failed write was for when `err` (or an error it came from) says the disk is full: an
    ENOSPC/EDQUOT OSError, or a library's write failure while one of `folders` is on a nearly full disk."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return Path(err.filename).parent if err.filename else _fullest(folders)
        if any(text in str(err).lower() for text in WRITE_FAILED):
            fullest = _fullest(folders)
            if fullest is not None and _free_mb(fullest) * 2**20 < NEARLY_FULL_BYTES:
                return fullest
        err = err.__cause__ or err.__context__
    return None


def _fullest(folders: list[Path]) -> Path | None:
    existing = [folder for folder in folders if folder.exists()]
    return min(existing, key=_free_mb, default=None)


def _free_mb(folder: Path) -> float:
    return shutil.disk_usage(folder).free / 2**20


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
