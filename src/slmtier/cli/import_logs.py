"""`slmtier import-logs LOG... --recipe NAME --out DIR`: an LLM's logged answers to a task as train/validation/test
files, split by time, with a data card (slmtier.data.log_import)."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from slmtier.errors import SlmtierError


def add_import_logs_command(commands) -> None:
    command = commands.add_parser("import-logs", help="an LLM's logged answers as train/validation/test files")
    command.add_argument("logs", nargs="+", help="JSONL files, folders of them, or glob patterns")
    command.add_argument("--recipe", required=True, help="the task the answers are for (its prompt, parser)")
    command.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                         help="a Hydra override of the recipe (task.labels=..., task.max_input_words=...)")  # fmt: skip
    command.add_argument("--out", type=Path, required=True, help="folder for train/validation/test.jsonl")
    command.add_argument("--input-pattern", help="a regex whose group (?P<input>...) is the task input in the "
                         "last user message (a prompt template around it); default: the whole message")  # fmt: skip
    command.add_argument("--near-duplicate", type=float, default=0.9,
                         help="TF-IDF cosine at which an input repeats an earlier one (1: exact only)")  # fmt: skip
    command.add_argument("--validation-share", type=float, default=0.1)
    command.add_argument("--test-share", type=float, default=0.2, help="the latest rows, held out for the benchmark")
    command.set_defaults(handler=run_import_logs)


def log_files(specs: list[str]) -> list[Path]:
    files = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files += sorted(path.glob("*.jsonl"))
        elif path.is_file():
            files.append(path)
        else:
            matched = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
            if not matched:
                raise SlmtierError(f"{spec}: no such file, folder or pattern")
            files += matched
    if not files:
        raise SlmtierError(f"no .jsonl file in {', '.join(specs)}")
    return files


def run_import_logs(args: argparse.Namespace) -> None:
    from slmtier.cli.errors import exit_on_config_error
    from slmtier.config import compose_config, to_run_config
    from slmtier.data.log_import import import_logs
    from slmtier.tasks import build_task

    if not 0 <= args.near_duplicate <= 1:
        raise SlmtierError(f"--near-duplicate {args.near_duplicate}: a cosine between 0 and 1")
    files = log_files(args.logs)
    with exit_on_config_error():
        cfg = to_run_config(compose_config([f"recipe={args.recipe}", *args.override]))
    card = import_logs(files, build_task(cfg.task), args.out, input_pattern=args.input_pattern,
                       near=args.near_duplicate, validation=args.validation_share, test=args.test_share)  # fmt: skip
    for line in card["unreadable_lines"]:
        print(f"skipped {line}", file=sys.stderr)
    splits = ", ".join(f"{name} {part['rows']:,} ({part['first']} to {part['last']})"
                       for name, part in card["splits"].items())  # fmt: skip
    dropped = ", ".join(f"{n:,} {why}" for why, n in card["dropped"].items()) or "none"
    print(f"{card['kept']:,} rows of {card['read_lines']:,} log lines: {splits}; dropped: {dropped}")
    files = " ".join(f"data.{split}={args.out / f'{split}.jsonl'}" for split, part in card["splits"].items()
                     if part["rows"])  # fmt: skip
    # The files' own field names, whatever the recipe reads from its shipped data (banking77: category, ...).
    print(
        f"train: python train.py recipe={args.recipe} {files} data.id_field=id data.text_field=text "
        "data.target_field=label data.query_field=null data.validation_holdout=null"
    )
    print(json.dumps({"out": str(args.out), "kept": card["kept"], "dropped": card["dropped"]}))
