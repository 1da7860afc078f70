"""Multi-process training on the CPU: torchrun with two processes (gloo), as accelerate launch would on GPUs."""

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers.files import REPO, read_jsonl
from helpers.tiny import tiny_overrides

ACCELERATE = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


def test_two_processes_train_one_adapter_and_one_report(tiny_model_dir, small_data, tmp_path):
    run_dir = tmp_path / "run"
    with socket.socket() as sock:  # a free port for the two processes to meet on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               str(REPO / "train.py"), *tiny_overrides(tiny_model_dir, small_data, run_dir)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tiers"]["slm"]["training"]["world_size"] == 2  # both ranks trained, data-parallel
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert result.stdout.count("run directory:") == 1  # only rank 0 benchmarked and reported
    for name in ("slm", "baseline"):
        rows = read_jsonl(run_dir / "predictions" / f"{name}.jsonl")
        assert len(rows) == len({row["id"] for row in rows}) == len(read_jsonl(small_data["test"]))


@pytest.mark.parametrize("path", ACCELERATE, ids=[p.stem for p in ACCELERATE])
def test_accelerate_configs_load_with_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16" and config.num_machines == 1
    assert path.read_text().splitlines()[0].startswith("# "), "each says what it is for and how to launch it"
    if path.stem == "fsdp":
        assert config.fsdp_config["fsdp_use_orig_params"] is True


def test_a_sweep_through_submitit_local_processes(tiny_model_dir, small_data, tmp_path):
    """hydra/launcher=local_processes: submitit's local executor, the same path as hydra/launcher=slurm."""
    from helpers.processes import run_train_cli

    overrides = [o for o in tiny_overrides(tiny_model_dir, small_data, tmp_path / "unused") if "hydra.run.dir" not in o]
    sweep = tmp_path / "sweep"
    result = run_train_cli(
        "-m", "hydra/launcher=local_processes", *overrides, "trainer.seed=1,2", f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(path.parent.relative_to(sweep).as_posix() for path in sweep.rglob("metrics.json"))
    assert jobs == ["ticket_classifier/tiny/0", "ticket_classifier/tiny/1"]
    assert list((sweep / ".submitit").iterdir()), "submitit ran the jobs"
    assert (sweep / "report.json").is_file()


def test_slurm_launcher_config_composes():
    from slmtier.config import compose_config

    cfg = compose_config(["recipe=ticket_classifier", "hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.timeout_min == 240


def test_optuna_sweep_maximises_the_validation_score(tiny_model_dir, small_data, tmp_path):
    """hydra/sweeper=optuna_lr_rank: two trials on the tiny model; the best parameters are written out."""
    import yaml

    from helpers.processes import run_train_cli

    overrides = [o for o in tiny_overrides(tiny_model_dir, small_data, tmp_path / "unused") if "hydra.run.dir" not in o]
    sweep = tmp_path / "sweep"
    result = run_train_cli("-m", "hydra/sweeper=optuna_lr_rank", "hydra.sweeper.n_trials=2", *overrides,
                           f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"trainer.learning_rate", "lora.r"}
    assert 0.0 <= best["best_value"] <= 1.0  # the SLM's validation accuracy
    assert len(list(sweep.rglob("metrics.json"))) == 2
