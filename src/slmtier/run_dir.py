"""The run directory: the files each stage writes and later stages (and reports) read, owned by `RunDir`.

config.yaml              the resolved config (written first)
predictions/<name>.jsonl one row per test example and candidate (<name>.validation.jsonl: validation split);
                         <name>[.validation].progress while it is being predicted
metrics.json             slmtier.metrics.RunMetrics (written last: a run is finished when it is there)
report.md, report.html   rebuilt by `slmtier report RUN_DIR` from the files above
routing.yaml             the decision, for the platform team
and each local tier's own files (its weights, its training summary, its checkpoints while it trains), named
in its module's docstring (slmtier.tiers.<name>): this module does not need to know them.

Every file is written atomically (`write_text_atomic`): a kill or a full disk never leaves half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from slmtier.config import RunConfig, to_run_config
from slmtier.errors import DiskFull, RunDirError, SlmtierError
from slmtier.metrics import RunMetrics


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


@dataclass(frozen=True)
class RunDir:
    """One run's folder: where each of its shared files lives, how they are written and read back, and
    whether a rerun in it resumes, finds it finished, or is refused."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    def predictions_file(self, candidate: str, split: str = "test") -> Path:
        return self.predictions / (f"{candidate}.jsonl" if split == "test" else f"{candidate}.{split}.jsonl")

    def report_file(self, name: str) -> Path:
        """report.md, report.html or routing.yaml."""
        return self.path / name

    # --- writing
    def write_config(self, cfg: DictConfig) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(self.config_file, OmegaConf.to_yaml(cfg, resolve=True))

    def write_metrics(self, metrics: RunMetrics) -> Path:
        return write_json_atomic(self.metrics_file, metrics.to_dict())

    # --- reading back
    def read_config(self) -> RunConfig:
        """The typed config the run was made with (its config.yaml, checked against today's schema)."""
        if not self.config_file.is_file():
            raise RunDirError(f"{self.config_file}: missing; pass a run directory such as runs/<recipe>/<model>/<time>")
        try:
            merged = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.load(self.config_file))
        except OmegaConfBaseException as err:
            raise RunDirError(
                f"{self.config_file}: does not match this slmtier version's config schema ({err})"
            ) from err
        return to_run_config(merged)

    def read_config_text(self) -> str:
        return self.config_file.read_text(encoding="utf-8")

    def read_metrics(self) -> RunMetrics:
        raw = _read_json(self.metrics_file)
        if not isinstance(raw, dict):
            raise RunDirError(f"{self.metrics_file}: expected one JSON object, got {type(raw).__name__}")
        try:
            return RunMetrics.from_dict(raw)
        except (ValueError, TypeError, KeyError) as err:
            raise RunDirError(f"{self.metrics_file}: {err}") from err

    def read_predictions(self, candidate: str, split: str = "test") -> list[dict]:
        path = self.predictions_file(candidate, split)
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def check_files(self) -> RunMetrics:
        """The run's metrics, once its files are known whole: refuses, naming the file (and line), a missing
        config.yaml or metrics.json (the run stopped early), a metrics.json of another schema, or a
        predictions file cut short. Checked before any report is rewritten, so nothing is left half-written."""
        if not self.path.is_dir():
            raise RunDirError(
                f"{self.path}: not a directory; pass a run directory such as runs/<recipe>/<model>/<time>"
            )
        missing = [path.name for path in (self.config_file, self.metrics_file) if not path.is_file()]
        if missing:
            raise RunDirError(f"{self.path}: missing {missing}; was the run interrupted before it finished?")
        metrics = self.read_metrics()
        for name in metrics.candidates:
            _check_jsonl(self.predictions_file(name), name)
        return metrics

    # --- resuming
    def started(self) -> bool:
        """Whether any stage wrote anything beyond config.yaml (and Hydra's log file)."""
        return self.path.is_dir() and any(
            entry.name != self.config_file.name and entry.suffix != ".log" for entry in self.path.iterdir()
        )

    def check_resumable(self, config_yaml: str) -> RunMetrics | None:
        """None for a fresh folder, or an interrupted run of this same config (which then resumes: each tier
        from its checkpoint, predictions from their saved rows), or a run that reached no verdict
        (`undecided`: the LLM is asked again); the metrics of a finished run (nothing to redo). A folder
        holding another config is refused, not mixed."""
        if not self.config_file.is_file() or not self.started():  # nothing done yet: start afresh
            return None
        if self.read_config_text() != config_yaml:
            raise SlmtierError(
                f"{self.path} already holds a run with a different config; to resume it, rerun its own command "
                "(config.yaml there); for a new run choose another hydra.run.dir or remove that folder"
            )
        if not self.metrics_file.is_file():
            return None
        metrics = self.check_files()  # a finished run's files are whole (or the message says which is not)
        return None if metrics.verdict == "undecided" else metrics


def _check_jsonl(path: Path, name: str) -> None:
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
