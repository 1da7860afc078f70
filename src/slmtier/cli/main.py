"""The `slmtier` command.

slmtier report RUN_DIR       rebuild report.md, report.html and routing.yaml from a run's files (no model loaded)
slmtier report RUN_DIR... --out DIR   the architect report over many runs (tasks x models x seeds)
slmtier serve RUN_DIR        serve the run's fine-tuned SLM over the OpenAI chat-completions API
slmtier route ROUTING.yaml...   serve tasks as decided, behind one OpenAI-compatible endpoint; log every request
slmtier monitor LOG... --routing ROUTING.yaml --out DIR   logged traffic against the benchmark (exit 1: an alarm)
slmtier replay SPLIT --router URL --model TASK   send a data split through a running router (drift optional)
slmtier import-logs LOG... --recipe NAME --out DIR   an LLM's logged answers as train/validation/test, by time
slmtier launch [opts] -- ARGS   run train.py ARGS on rented GPUs through SkyPilot (--dry-run prints the task)
slmtier recipes              list the shipped recipes
slmtier train recipe=NAME    same as `python train.py recipe=NAME` (Hydra overrides follow)

Exit codes: 0 done; 2 a user mistake (an unknown config key or group option, a wrong value, bad data, a
missing run file), with one message that says what to fix; 3 a finished run without a verdict (reports
written); 1 a bug (a traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slmtier.baselines.api_keys import check_command_line
from slmtier.cli.errors import exit_on_config_error, exit_on_user_error
from slmtier.cli.import_logs import add_import_logs_command
from slmtier.cli.launch import add_launch_command
from slmtier.cli.monitor import add_monitor_command
from slmtier.cli.replay import add_replay_command
from slmtier.cli.route import add_route_command
from slmtier.cli.serve import add_serve_command
from slmtier.config import PROJECT_ROOT
from slmtier.errors import SlmtierError

# bitsandbytes (imported by peft) warns on every CPU start that an optional 4-bit kernel package is missing;
# slmtier never runs 4-bit on a CPU, so it is noise (the same line is in cli/train.py).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def _report(args: argparse.Namespace) -> None:
    from slmtier.report import write_reports
    from slmtier.report.aggregate import write_aggregate
    from slmtier.run_dir import RunDir

    for run_dir in args.run_dirs:  # every run checked before any report file is (re)written
        RunDir(run_dir).check_files()
    if len(args.run_dirs) == 1 and args.out is None:
        paths = write_reports(Path(args.run_dirs[0]))
    elif args.out is None:
        raise SlmtierError("several run directories: say where the combined report goes with --out DIR")
    else:
        paths = write_aggregate([Path(d) for d in args.run_dirs], Path(args.out))
    for path in paths:
        print(path)


def _recipes(_: argparse.Namespace) -> None:
    for path in sorted((PROJECT_ROOT / "recipes").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[1].lstrip("# ").strip()  # line 1: the package header
        print(f"{path.stem:28s} {first}")


HELP_FLAGS, HELP_RECIPE = {"--help", "-h"}, "ticket_classifier"


def train() -> None:
    """`python train.py ARGS` and `slmtier train ARGS`: Hydra with ARGS, once no argument holds a pasted key.
    Checked before Hydra reads them: it saves a sweep's overrides to multirun.yaml before any job starts, and
    repeats an override in its own errors. A config mistake Hydra finds (`lora.rr=4`, `model=nope`) exits 2
    like any user mistake, with a "did you mean"."""
    with exit_on_user_error():
        check_command_line(sys.argv[1:])
    if HELP_FLAGS & set(sys.argv[1:]) and not any(arg.startswith("recipe=") for arg in sys.argv[1:]):
        sys.argv.append(f"recipe={HELP_RECIPE}")  # help needs a composed config; the demo's stands in for one
    from slmtier.cli.train import main as train_main

    with exit_on_config_error():
        train_main()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":  # hand everything after `train` to Hydra untouched
        sys.argv = [sys.argv[0], *argv[1:]]
        train()
        return
    parser = argparse.ArgumentParser(prog="slmtier", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report", help="rebuild a run's reports, or with several runs (or --out) the combined architect report"
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", help="folder for the combined report.html, report.md and report.json")
    report.set_defaults(handler=_report)
    commands.add_parser("recipes", help="list the shipped recipes").set_defaults(handler=_recipes)
    add_serve_command(commands)
    add_route_command(commands)
    add_monitor_command(commands)
    add_replay_command(commands)
    add_import_logs_command(commands)
    add_launch_command(commands)
    commands.add_parser("train", help="fine-tune, benchmark and decide: slmtier train recipe=NAME [overrides]")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        args.handler(args)
