"""A killed run resumes: `python train.py` is SIGKILLed at random points during training and during
prediction, several times, then rerun with the same command (same hydra.run.dir). Training carries on from
its newest checkpoint, prediction from the rows already saved, and the end result is the uninterrupted run's:
the same adapter (max abs difference below 1e-6 on the tiny model), the same predictions, every test id once.
Also: the same seed and data give identical metrics twice on CPU."""

from __future__ import annotations

import json
import logging
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from helpers.files import REPO, TICKETS, read_jsonl, write_jsonl
from helpers.tiny import tiny_overrides
from slmtier.benchmark.progress import append_rows, progress_path, read_finished
from slmtier.data import load_splits
from slmtier.tasks import build_task


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume-data")
    return {
        split: write_jsonl(folder / f"{split}.jsonl", read_jsonl(TICKETS / f"{split}.jsonl")[:n])
        for split, n in (("train", 32), ("validation", 16), ("test", 40))
    }


def command(model_dir, data, run_dir: Path) -> list[str]:
    overrides = tiny_overrides(model_dir, data, run_dir)
    # 32 steps with a checkpoint every 4; prediction one example at a time, so both last long enough to be hit.
    extra = ["trainer.max_steps=32", "trainer.per_device_train_batch_size=2", "trainer.save_steps=4"]
    return [sys.executable, str(REPO / "train.py"), *overrides, *extra, "inference.batch_size=1"]


def run_to_end(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        result = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    assert result.returncode == 0, log.read_text()[-3000:]


def kill_when(cmd: list[str], log: Path, ready, rng: random.Random) -> bool:
    """Start the run, wait until `ready()` (or the run ends), then SIGKILL it after a random delay.
    True when it was killed, False when it finished first."""
    with log.open("a") as out:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while process.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    return killed


def checkpoints(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "trainer").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]


def newest_step(run_dir: Path) -> int:
    return max((int(p.name.rsplit("-", 1)[1]) for p in checkpoints(run_dir)), default=0)


def said(log: Path, words: str) -> bool:
    return words in log.read_text(errors="replace")


def saved_rows(run_dir: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (run_dir / "predictions").glob("*.progress"))


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(tiny_model_dir, data, tmp_path):
    rng = random.Random(7)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    log = tmp_path / "resumed.log"
    run_to_end(command(tiny_model_dir, data, reference), tmp_path / "reference.log")

    cmd = command(tiny_model_dir, data, resumed)
    # Each kill waits for a state, not a time, so the run is hit where it is meant to be on any machine:
    # during training once a checkpoint exists, then during the resumed training, then twice during prediction.
    kills = kill_when(cmd, log, lambda: newest_step(resumed) >= 4, rng)
    kills += kill_when(cmd, log, lambda: said(log, "resuming training from") and newest_step(resumed) >= 12, rng)
    assert not (resumed / "training.json").exists(), "the kills were meant to land during training"
    kills += kill_when(cmd, log, lambda: saved_rows(resumed) > rng.randint(1, 12), rng)
    resumed_rows = "rows kept from an earlier attempt"
    kills += kill_when(cmd, log, lambda: said(log, resumed_rows) and saved_rows(resumed) > 30, rng)
    assert kills >= 3, log.read_text()[-3000:]
    run_to_end(cmd, log)

    text = log.read_text()
    assert "resuming training from" in text and "rows kept from an earlier attempt" in text, text[-3000:]
    training = json.loads((resumed / "training.json").read_text())
    assert training["resumed_from_step"] and training["steps"] == 32
    assert not checkpoints(resumed), "checkpoints are removed once the final adapter is saved"
    # The same adapter as the uninterrupted run.
    ours = load_file(resumed / "adapter" / "adapter_model.safetensors")
    theirs = load_file(reference / "adapter" / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    assert max((ours[k] - theirs[k]).abs().max().item() for k in ours) < 1e-6
    # Every test id exactly once, nothing half-written left behind, the same answers.
    test_ids = [row["id"] for row in read_jsonl(data["test"])]
    for name in ("slm", "baseline"):
        rows = read_jsonl(resumed / "predictions" / f"{name}.jsonl")
        assert [row["id"] for row in rows] == test_ids
        expected = {row["id"]: row["raw_output"] for row in read_jsonl(reference / "predictions" / f"{name}.jsonl")}
        assert {row["id"]: row["raw_output"] for row in rows} == expected
    assert not list((resumed / "predictions").glob("*.progress")) and not list(resumed.rglob("*.partial"))
    ours_metrics = json.loads((resumed / "metrics.json").read_text())
    theirs_metrics = json.loads((reference / "metrics.json").read_text())
    for name in ("slm", "baseline"):
        assert ours_metrics["candidates"][name]["quality"] == theirs_metrics["candidates"][name]["quality"]
    assert ours_metrics["decision"]["verdict"] == theirs_metrics["decision"]["verdict"]

    # A finished run is not redone; a different config in the same folder is refused.
    before = (resumed / "metrics.json").stat().st_mtime_ns
    run_to_end(cmd, log)
    assert (resumed / "metrics.json").stat().st_mtime_ns == before and "finished earlier" in log.read_text()
    other = subprocess.run([*cmd, "trainer.learning_rate=0.5"], cwd=REPO, capture_output=True, text=True)
    assert other.returncode != 0 and "different config" in other.stderr and "Traceback" not in other.stderr


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data, tmp_path_factory) -> tuple[list[str], Path]:
    """A short run left to finish undisturbed: (its command, its run directory)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    cmd = [*command(tiny_model_dir, data, run_dir)[:-1], "trainer.max_steps=4", "trainer.save_steps=0"]
    run_to_end(cmd, run_dir.parent / "reference.log")
    return cmd, run_dir


def test_same_seed_and_data_give_identical_metrics(reference, tmp_path):
    cmd, first = reference
    second = tmp_path / "second"
    run_to_end([arg.replace(str(first), str(second)) for arg in cmd], tmp_path / "second.log")
    runs = [json.loads((run_dir / "metrics.json").read_text()) for run_dir in (first, second)]
    for name in ("slm", "baseline"):
        first, second = (run["candidates"][name] for run in runs)
        assert first["quality"] == second["quality"] and first["confusion"] == second["confusion"]
    assert runs[0]["tiers"]["slm"]["training"]["train_loss"] == runs[1]["tiers"]["slm"]["training"]["train_loss"]
    assert runs[0]["tiers"]["slm"]["comparison"] == runs[1]["tiers"]["slm"]["comparison"]


def row(row_id: str, **fields) -> dict:
    """A predictions row as benchmark.candidates.build_row writes it (the fields the reader requires)."""
    return {"id": row_id, "raw_output": "billing", "parsed": "billing", "gold": "billing", "correct": 1.0,
            "score_parts": [1.0, 1.0], **fields}  # fmt: skip


def test_a_torn_last_line_is_predicted_again(tmp_path):
    final = tmp_path / "slm.jsonl"
    with progress_path(final).open("a") as handle:
        append_rows(handle, [row("a"), row("b")])
        handle.write('{"id": "c", "x"')  # the kill landed mid-line
    assert sorted(read_finished(final, ["a", "b", "c"])) == ["a", "b"]
    assert sorted(read_finished(final, ["a", "c"])) == ["a"]  # rows of other ids are not kept
    final.write_text("".join(json.dumps(row(i)) + "\n" for i in "abc"))
    assert sorted(read_finished(final, ["a", "b", "c"])) == ["a", "b", "c"]  # a whole final file wins


def test_damaged_lines_are_named_dropped_and_predicted_again(tmp_path, caplog):
    """Garbage bytes or JSON that is not a row used to end the rerun in a UnicodeDecodeError or TypeError."""
    final = tmp_path / "slm.jsonl"
    damaged = [b"\xff\xfe\x00garbage\n", b'["a", "list"]\n', b'{"id": "x"}\n', b"[" * 100_000 + b"\n"]
    good = [json.dumps(row(i)).encode() + b"\n" for i in "ab"]
    progress_path(final).write_bytes(good[0] + b"".join(damaged) + good[1])
    with caplog.at_level(logging.WARNING):
        kept = read_finished(final, ["a", "b", "x"])
    assert sorted(kept) == ["a", "b"]
    for line_no in (2, 3, 4, 5):
        assert f"{progress_path(final)}:{line_no}: not a prediction row" in caplog.text


def test_resumed_prediction_keeps_saved_rows_and_predicts_the_rest(tmp_path):
    from slmtier.benchmark.candidates import run_candidate
    from slmtier.data import Example
    from slmtier.inference import Generation
    from slmtier.tasks.classification import Classification

    task = Classification(instruction="{labels}", labels=("billing", "refund"))
    examples = [Example(id=f"e{i}", input=f"text {i}", target="billing") for i in range(30)]

    class Counting:
        name, model, info, batch_size = "slm", "m", {}, 2
        seen: list[str] = []

        def predict(self, task, chunk):
            self.seen += [e.id for e in chunk]
            return [Generation("billing", 10.0, 3, 1, batch_size=2) for _ in chunk]

    candidate = Counting()
    with progress_path(tmp_path / "slm.jsonl").open("w") as handle:
        append_rows(handle, [row("e3", raw_output="refund", latency_ms=1.0, batch_size=1)])
    rows, timing = run_candidate(candidate, task, examples, tmp_path)
    assert [row["id"] for row in rows] == [e.id for e in examples]
    assert "e3" not in candidate.seen and len(candidate.seen) == 29 and timing.rows == 29
    assert rows[3]["raw_output"] == "refund"  # kept as saved
    assert not progress_path(tmp_path / "slm.jsonl").exists()
    candidate.seen.clear()
    rows_again, timing_again = run_candidate(candidate, task, examples, tmp_path)
    assert candidate.seen == [] and rows_again == rows and timing_again.requests_per_s is not None


def test_local_models_save_in_chunks_and_the_llm_tier_in_one_call(tmp_path):
    from slmtier.benchmark.candidates import CHUNK_BATCHES, run_candidate
    from slmtier.data import Example
    from slmtier.inference import Generation
    from slmtier.tasks.classification import Classification

    task = Classification(instruction="{labels}", labels=("billing", "refund"))
    examples = [Example(id=f"e{i}", input=f"text {i}", target="billing") for i in range(100)]

    class Recorder:
        model, info = "m", {}

        def __init__(self, name, **settings):
            self.name, self.calls = name, []
            self.__dict__.update(settings)

        def predict(self, task, chunk):
            self.calls.append(len(chunk))
            return [Generation("billing", 1.0, 3, 1) for _ in chunk]

    local = Recorder("slm", batch_size=2)
    run_candidate(local, task, examples, tmp_path)
    assert local.calls == [2 * CHUNK_BATCHES] * (100 // (2 * CHUNK_BATCHES)) + [100 % (2 * CHUNK_BATCHES)]
    llm = Recorder("llm", one_call=True)  # its `info` (cache hits, spend) must describe the whole split
    run_candidate(llm, task, examples, tmp_path)
    assert llm.calls == [100]


# --- Checkpoints the Trainer cannot resume from (issue 15): rotated away, the last step, damaged.


class StopAtSave(TrainerCallback):
    """A crash right after checkpoint `step` is on disk (what a kill at that moment leaves)."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"stopped after checkpoint-{self.step}")


@pytest.fixture
def tiny_training(tiny_model_dir, small_data, tmp_path):
    """train(work_dir, max_steps, save_steps, callbacks) -> (adapter state dict, TrainResult), each call on a
    fresh copy of the tiny base model, as a rerun of `python train.py` would load it."""
    from slmtier.config import compose_config, to_run_config
    from slmtier.tiers.slm import load_base_model
    from slmtier.training import build_sft_dataset, train_adapter

    overrides = tiny_overrides(tiny_model_dir, small_data, tmp_path / "run")[:-1]
    cfg = to_run_config(compose_config([*overrides, "trainer.max_steps=6", "trainer.per_device_train_batch_size=2",
                                        "trainer.save_steps=1"]))  # fmt: skip
    task = build_task(cfg.task)
    dataset = build_sft_dataset(task, load_splits(cfg.data, task.check_target).train)

    def train(work_dir: Path, callbacks=()):
        model, tokenizer = load_base_model(cfg)
        trained, result = train_adapter(model, tokenizer, dataset, trainer_cfg=cfg.trainer, lora_cfg=cfg.lora,
                                        work_dir=work_dir, callbacks=list(callbacks))  # fmt: skip
        return {k: v.detach().clone() for k, v in trained.named_parameters() if "lora_" in k}, result

    return train


def same_weights(ours: dict, theirs: dict) -> bool:
    return ours.keys() == theirs.keys() and max((ours[k] - theirs[k]).abs().max().item() for k in ours) < 1e-6


def crash_after(train, work_dir: Path, step: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        train(work_dir, [StopAtSave(step)])


def test_resume_survives_the_rotation_of_the_checkpoint_it_started_from(tiny_training, tmp_path):
    reference, _ = tiny_training(tmp_path / "reference")
    crash_after(tiny_training, tmp_path / "work", 2)
    # Resumed from checkpoint-2, the run saves four more checkpoints; save_total_limit=2 deletes checkpoint-2.
    weights, result = tiny_training(tmp_path / "work")
    assert result.resumed_from_step == 2 and result.steps == 6
    assert same_weights(weights, reference)


def test_a_checkpoint_of_the_last_step_is_not_trained_past(tiny_training, tmp_path, caplog):
    reference, first = tiny_training(tmp_path / "work")  # leaves checkpoint-5 and checkpoint-6 behind
    assert first.steps == 6 and (tmp_path / "work" / "checkpoint-6").is_dir()
    with caplog.at_level(logging.WARNING):
        weights, result = tiny_training(tmp_path / "work")  # a kill after the last checkpoint, before the adapter
    assert result.steps == 6 and result.resumed_from_step == 5, "the Trainer runs one step past max_steps"
    assert "checkpoint-6" in caplog.text and "last step" in caplog.text
    assert same_weights(weights, reference)


def corrupt(folder: Path, how: str) -> None:
    if how == "half safetensors":
        path = folder / "adapter_model.safetensors"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage trainer_state":
        (folder / "trainer_state.json").write_text('{"global_step": 3, "log_hi')
    elif how == "random optimizer":
        (folder / "optimizer.pt").write_bytes(random.Random(0).randbytes(4096))


@pytest.mark.parametrize("how", ["half safetensors", "garbage trainer_state", "random optimizer"])
def test_a_damaged_checkpoint_falls_back_to_the_one_before(tiny_training, tmp_path, caplog, how):
    reference, _ = tiny_training(tmp_path / "reference")
    work = tmp_path / "work"
    crash_after(tiny_training, work, 3)  # checkpoint-2 and checkpoint-3 on disk
    corrupt(work / "checkpoint-3", how)
    with caplog.at_level(logging.WARNING):
        weights, result = tiny_training(work)
    assert result.resumed_from_step == 2 and result.steps == 6
    assert "not resuming from" in caplog.text and "checkpoint-3" in caplog.text
    assert same_weights(weights, reference)


def test_no_usable_checkpoint_trains_afresh(tiny_training, tmp_path, caplog):
    reference, _ = tiny_training(tmp_path / "reference")
    work = tmp_path / "work"
    crash_after(tiny_training, work, 2)
    for folder in work.glob("checkpoint-*"):
        corrupt(folder, "random optimizer")
    with caplog.at_level(logging.WARNING):
        weights, result = tiny_training(work)
    assert result.resumed_from_step is None and result.steps == 6 and "starts afresh" in caplog.text
    assert same_weights(weights, reference)


# --- A full disk (issue 15): one message naming the folder, then a rerun (space freed) finishes the run.


def _can_mount_tmpfs() -> bool:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def pages(folder: Path, *, without: tuple[str, ...] = ()) -> int:
    """Bytes a tmpfs needs for these files (whole 4 KiB pages)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name not in without]
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in files)


def fill_the_disk(cmd: list[str], run_dir: Path, size: int, out: Path) -> tuple[str, str, str]:
    """Run `cmd` with run_dir on a tmpfs of `size` bytes, then again once it has room (64 MiB), in a mount
    namespace of its own; (first run's stderr, what it left, second run's output); asserts the exit codes."""
    run_dir.mkdir()
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {run_dir} && {shlex.join(cmd)} >{out}.out 2>{out}.err; echo $? >{out}.rc;"
        f" ls -R {run_dir} >{out}.left; mount -o remount,size=64m {run_dir} && {shlex.join(cmd)} >{out}.again 2>&1;"
        f" echo $? >>{out}.rc; cp -a {run_dir}/. {out}.kept"
    )
    subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO, timeout=600, check=True)
    first, second = Path(f"{out}.rc").read_text().split()
    stderr, again = Path(f"{out}.err").read_text(), Path(f"{out}.again").read_text()
    assert first == "2" and f"no space left on the disk holding {run_dir}" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr and "rerun the same command" in stderr
    assert second == "0", again[-3000:]
    return stderr, Path(f"{out}.left").read_text(), again


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -m` and tmpfs mounts (root in a sandbox)")
@pytest.mark.slow
def test_a_full_disk_is_one_message_and_the_rerun_finishes(reference, tmp_path):
    cmd, reference = reference
    theirs = json.loads((reference / "metrics.json").read_text())

    def same_run(run_dir: Path, *extra: str) -> list[str]:
        return [str(arg).replace(str(reference), str(run_dir)) for arg in cmd] + list(extra)

    # While a checkpoint is saved (torch says only "unexpected pos"): room for the config, not one checkpoint.
    _, left, _ = fill_the_disk(same_run(tmp_path / "a", "trainer.save_steps=1"), tmp_path / "a", 64 * 1024,
                               tmp_path / "checkpoint")  # fmt: skip
    assert "checkpoint-" in left and "training.json" not in left
    # While the reports are written: room for everything but them. The rerun finds metrics.json and writes
    # the missing reports, instead of "finished earlier; nothing to redo" over a cut report.html.
    reports = ("report.md", "report.html", "routing.yaml", "train.log")
    size = pages(reference, without=reports) + 8192
    _, left, again = fill_the_disk(same_run(tmp_path / "b"), tmp_path / "b", size, tmp_path / "reports")
    assert "metrics.json" in left and "routing.yaml" not in left and ".partial" not in left
    assert "finished earlier; rewrote" in again
    for kept in (Path(f"{tmp_path}/checkpoint.kept"), Path(f"{tmp_path}/reports.kept")):
        assert (kept / "report.html").read_text().rstrip().endswith("</html>") and (kept / "routing.yaml").is_file()
        ours = json.loads((kept / "metrics.json").read_text())
        assert ours["candidates"]["slm"]["quality"] == theirs["candidates"]["slm"]["quality"]
        assert ours["decision"]["verdict"] == theirs["decision"]["verdict"]


def test_a_full_disk_while_predicting_names_the_folder(tmp_path):
    """/dev/full fails every write with ENOSPC, as a full disk does: the prediction rows' file points there."""
    from slmtier.benchmark.candidates import run_candidate
    from slmtier.data import Example
    from slmtier.errors import DiskFull
    from slmtier.inference import Generation
    from slmtier.run_dir import disk_full_as_error
    from slmtier.tasks.classification import Classification

    class Answering:
        name, model, info, batch_size = "slm", "m", {}, 2

        def predict(self, task, chunk):
            return [Generation("billing", 1.0, 3, 1) for _ in chunk]

    task = Classification(instruction="{labels}", labels=("billing", "refund"))
    examples = [Example(id=f"e{i}", input=f"text {i}", target="billing") for i in range(4)]
    progress_path(tmp_path / "slm.jsonl").symlink_to("/dev/full")
    with pytest.raises(DiskFull, match=f"no space left on the disk holding {tmp_path}"), disk_full_as_error(tmp_path):
        run_candidate(Answering(), task, examples, tmp_path)
    with pytest.raises(ZeroDivisionError), disk_full_as_error(tmp_path):  # other errors pass through unchanged
        _ = 1 / 0
