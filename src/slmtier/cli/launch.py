"""`slmtier launch [options] -- <train.py arguments>`: run a sweep on rented GPUs through SkyPilot."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from slmtier.baselines.api_keys import check_command_line
from slmtier.errors import SlmtierError


def add_launch_command(commands) -> None:
    launch = commands.add_parser(
        "launch",
        help="run train.py (a sweep or one run) on rented GPUs through SkyPilot",
        description="Example: slmtier launch --gpus A100:1 --bucket s3://me/slmtier --secret WANDB_API_KEY "
        "-- -m recipe=ticket_classifier model=qwen2_5_7b,qwen3_8b lora=qlora tracking=wandb",
    )
    launch.add_argument("--name", default="slmtier", help="task / cluster name")
    launch.add_argument("--gpus", default="L4:1", help="SkyPilot accelerators, e.g. A100:1, H100:8; 'none' for CPU")
    launch.add_argument("--cpus", help="CPU count for CPU-only tasks, e.g. 8+")
    launch.add_argument("--cloud", help="aws, gcp, azure, lambda, runpod, kubernetes, ... (default: cheapest enabled)")
    launch.add_argument("--spot", action="store_true", help="spot/preemptible instances (pair with --managed)")
    launch.add_argument("--bucket", help="bucket mounted at /outputs for the run directories (s3://, gs://, ...)")
    launch.add_argument("--mount", action="append", default=[], metavar="REMOTE=SOURCE",
                        help="extra data: remote path = local path or bucket (repeatable)")  # fmt: skip
    launch.add_argument("--secret", action="append", default=[], metavar="NAME",
                        help="environment variable passed to the task by name (repeatable)")  # fmt: skip
    launch.add_argument("--managed", action="store_true", help="a SkyPilot managed job (recovers from preemption)")
    launch.add_argument(
        "--dry-run", action="store_true", help="print the task YAML and the sky command; launch nothing"
    )
    launch.add_argument("--out", default="sky/slmtier-task.yaml", help="where the task YAML is written")
    launch.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: the train.py arguments")
    launch.set_defaults(handler=run_launch)


def run_launch(args: argparse.Namespace) -> None:
    from slmtier.launch import LaunchSpec, build_sky_command, build_sky_task, dump_task, write_task

    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if not train_args:
        raise SlmtierError("give the train.py arguments after --, e.g. -- recipe=ticket_classifier model=qwen3_8b")
    check_command_line(train_args)  # they are written into the task file: a pasted key would land on disk
    mounts = dict(_split_mount(item) for item in args.mount)
    spec = LaunchSpec(
        train_args=train_args, name=args.name, accelerators=None if args.gpus == "none" else args.gpus,
        cpus=args.cpus, cloud=args.cloud, use_spot=args.spot, bucket=args.bucket, mounts=mounts, secrets=args.secret,
    )  # fmt: skip
    task = build_sky_task(spec)
    path = write_task(task, Path(args.out))
    command = build_sky_command(path, spec, managed=args.managed)
    if args.dry_run:
        print(dump_task(task), end="")
        print(f"# written to {path}; to launch: {' '.join(command)}")
        return
    if shutil.which("sky") is None:
        raise SlmtierError(
            f"the `sky` command (SkyPilot) is not installed; install it in its own environment, e.g. "
            f"`pipx install 'skypilot[aws]'`, then run: {' '.join(command)}"
        )
    sys.exit(subprocess.run(command, check=False).returncode)


def _split_mount(item: str) -> tuple[str, str]:
    remote, sep, source = item.partition("=")
    if not sep or not remote.startswith("/"):
        raise SlmtierError(
            f"--mount {item!r}: write REMOTE=SOURCE with an absolute remote path, e.g. /data=s3://me/data"
        )
    return remote, source
