"""Trackers on a tiny run: W&B offline (no network, no account) and TensorBoard event files, both from one run
with `tracking.report_to=[wandb,tensorboard]` (each tracker's files are its own; one run is enough for both)."""

from pathlib import Path

import pytest

from helpers.files import write_sample_splits
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides

PLANTED = "sk-slmtier-tracker-5d2e8a"


@pytest.fixture(scope="module")
def tracked(tiny_model_dir, tmp_path_factory) -> Path:
    """The folder of a tiny run tracked by W&B (offline, under wb/) and TensorBoard, with a key in its environment."""
    folder = tmp_path_factory.mktemp("tracked")
    data = write_sample_splits(folder, "tickets", (24, 8, 12))
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(folder / "wb"), "WANDB_SILENT": "true",
           "OPENAI_API_KEY": PLANTED}  # fmt: skip
    overrides = tiny_overrides(tiny_model_dir, data, folder / "run")
    result = run_train_cli(*overrides, "tracking.report_to=[wandb,tensorboard]", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_wandb_offline_gets_training_benchmark_and_reports(tracked):
    runs = list((tracked / "wb").rglob("offline-run-*"))
    assert len(runs) == 1, "the Trainer's run and the benchmark's figures share one W&B run"
    records = b"".join(path.read_bytes() for path in runs[0].rglob("*.wandb"))
    for expected in (b"train/loss", b"benchmark/slm/quality", b"benchmark/gap/low", b"slmtier-ticket_classifier"):
        assert expected in records, expected
    written = [path for path in tracked.rglob("*") if path.is_file()]
    assert not [path for path in written if PLANTED.encode() in path.read_bytes()]


def test_tensorboard_gets_the_benchmark(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked / "run" / "tensorboard"))
    events.Reload()
    assert {"benchmark/slm/quality", "benchmark/gap/value"} <= set(events.Tags()["scalars"])
    assert list((tracked / "run" / "trainer").rglob("events.out.tfevents.*")), "the Trainer's curves"
