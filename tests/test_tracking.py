"""Trackers on a tiny run: W&B offline (no network, no account) and TensorBoard event files."""

from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides

PLANTED = "sk-slmtier-tracker-5d2e8a"


def test_wandb_offline_gets_training_benchmark_and_reports(tiny_model_dir, small_data, tmp_path):
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb"), "WANDB_SILENT": "true",
           "OPENAI_API_KEY": PLANTED}  # fmt: skip
    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, tmp_path / "run"), "tracking=wandb", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wb").rglob("offline-run-*"))
    assert len(runs) == 1, "the Trainer's run and the benchmark's figures share one W&B run"
    records = b"".join(path.read_bytes() for path in runs[0].rglob("*.wandb"))
    for expected in (b"train/loss", b"benchmark/slm/quality", b"benchmark/gap/low", b"slmtier-ticket_classifier"):
        assert expected in records, expected
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert not [path for path in written if PLANTED.encode() in path.read_bytes()]


def test_tensorboard_gets_the_benchmark(tiny_model_dir, small_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, tmp_path / "run"), "tracking=tensorboard")
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"benchmark/slm/quality", "benchmark/gap/value"} <= set(events.Tags()["scalars"])
    assert list((tmp_path / "run" / "trainer").rglob("events.out.tfevents.*")), "the Trainer's curves"
