"""The `slmtier` command.

slmtier report RUN_DIR       rebuild report.md and report.html from a run's files (no model loaded)
slmtier serve RUN_DIR        serve the run's fine-tuned SLM over the OpenAI chat-completions API
slmtier recipes              list the shipped recipes
slmtier train recipe=NAME    same as `python train.py recipe=NAME` (Hydra overrides follow)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slmtier.cli.errors import exit_on_user_error
from slmtier.cli.serve import add_serve_command
from slmtier.config import PROJECT_ROOT


def _report(args: argparse.Namespace) -> None:
    from slmtier.report import write_reports

    for path in write_reports(Path(args.run_dir)):
        print(path)


def _recipes(_: argparse.Namespace) -> None:
    for path in sorted((PROJECT_ROOT / "recipes").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[1].lstrip("# ").strip()  # line 1: the package header
        print(f"{path.stem:28s} {first}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":  # hand everything after `train` to Hydra untouched
        from slmtier.cli.train import main as train_main

        sys.argv = [sys.argv[0], *argv[1:]]
        train_main()
        return
    parser = argparse.ArgumentParser(prog="slmtier", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="rebuild report.md and report.html from a run directory")
    report.add_argument("run_dir")
    report.set_defaults(handler=_report)
    commands.add_parser("recipes", help="list the shipped recipes").set_defaults(handler=_recipes)
    add_serve_command(commands)
    commands.add_parser("train", help="fine-tune, benchmark and decide: slmtier train recipe=NAME [overrides]")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        args.handler(args)
