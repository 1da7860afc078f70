"""The bad-input corpus: every folder in tests/e2e/bad_inputs/ is a mistake a user makes, and its expect.yaml says
what must come out: a message that says what to fix (file:line for a bad row) with no traceback, or the input
kept and the anomaly counted and reported. tests/e2e/bad_inputs/README.md describes the format.

Every case but the `cli_run` ones stops at start-up, before any model trains. Most run in-process (config
composition, task, data loading); the `cli_*` cases run the real commands in a subprocess to prove what the
user sees on stderr; a `cli_run` case runs train.py to the end on the tiny test model and checks the reports.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.errors import CompactHydraException

from helpers.files import REPO
from slmtier.baselines.predictions_file import join_logged_answers
from slmtier.config import compose_config, to_run_config
from slmtier.data import load_splits, report_long_inputs
from slmtier.errors import SlmtierError
from slmtier.preflight import check_config
from slmtier.tasks import build_task
from slmtier.tasks.chat import count_truncated

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(path.name for path in CORPUS.iterdir() if (path / "expect.yaml").is_file())
# The mistakes issue 8 names; the corpus may grow, but none of these may go missing.
REQUIRED = {
    "malformed_json_line", "wrong_field_types", "unknown_label", "missing_label", "empty_strings",
    "non_utf8_bytes", "text_100k_chars", "duplicate_ids", "train_test_leakage", "missing_split_file",
    "empty_file", "recipe_unknown_key", "model_not_found_offline", "field_spec_unknown_type",
    "predictions_ids_not_in_test", "report_missing_metrics",
}  # fmt: skip
# And the bad inputs of issue 15 that crashed or were accepted silently.
REQUIRED_15 = {
    "labels_collide_after_normalisation", "label_empty", "labels_listed_twice", "csv_cell_over_128kb",
    "json_nested_100k_brackets", "lone_surrogate_in_text", "duplicate_json_keys", "text_only_invisible_characters",
    "symlink_loop", "json_label_is_number",
}  # fmt: skip
# What the command line prints as a message (slmtier's own errors, Hydra's composition errors); any other
# exception reaches the user as a traceback.
USER_ERRORS = (SlmtierError, CompactHydraException)
SPLITS = ("train", "validation", "test")


def read_case(name: str) -> tuple[Path, dict]:
    case = CORPUS / name
    return case, yaml.safe_load((case / "expect.yaml").read_text(encoding="utf-8"))


def fill(text: str, case: Path, run: Path | None = None) -> str:
    return text.replace("{case}", str(case)).replace("{corpus}", str(CORPUS)).replace("{run}", str(run))


def start_up(overrides: list[str]):
    """What `python train.py` does before it loads a model (slmtier.cli.train.main): compose, check, build the
    task, load and check the data. report_long_inputs is new with this corpus; train.py is to call it too."""
    cfg = to_run_config(compose_config(overrides))
    check_config(cfg)
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    report_long_inputs(splits, cfg.task.max_input_words)
    return cfg, task, splits


def printed(err: BaseException) -> str:
    """The message the command line shows for this error (Hydra also prints an OmegaConf cause)."""
    return f"{err}\n{err.__cause__}" if isinstance(err, CompactHydraException) else str(err)


def check_error(err: BaseException, expected: dict, case: Path) -> None:
    assert isinstance(err, USER_ERRORS), f"{type(err).__name__} would reach the user as a traceback: {err}"
    assert expected["type"] in {cls.__name__ for cls in type(err).__mro__}, f"{type(err).__name__}: {err}"
    message = printed(err)
    for text in expected["contains"]:
        assert fill(text, case) in message, f"{fill(text, case)!r} not in:\n{message}"


def check_logged(caplog, expected: list[str], case: Path) -> None:
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("slmtier"))
    for text in expected:
        assert fill(text, case) in logged, f"{fill(text, case)!r} not logged; logged:\n{logged}"


def check_anomaly(expected: dict, case: Path, cfg, task, splits, caplog, request) -> None:
    for split, n in expected.get("rows", {}).items():
        assert len(getattr(splits, split)) == n, f"{split}: rows were dropped or added"
    for split, n in expected.get("truncated_inputs", {}).items():  # what metrics.json records per split
        inputs = [example.input for example in getattr(splits, split)]
        assert count_truncated(inputs, cfg.task.max_input_words) == n, split
    for split, limit in expected.get("max_prompt_chars", {}).items():
        user_turns = [task.build_messages(example)[-1]["content"] for example in getattr(splits, split)]
        assert max(map(len, user_turns)) <= limit, f"{split}: an input reaches the prompt uncut"
    if "trainer_truncated" in expected:  # what training counts (metrics.json training.truncated_examples)
        from transformers import AutoTokenizer

        from slmtier.training import build_sft_dataset, count_too_long

        tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue("tiny_model_dir"))
        dataset = build_sft_dataset(task, splits.train)
        assert count_too_long(tokenizer, dataset, cfg.trainer.max_length) == expected["trainer_truncated"]
    check_logged(caplog, expected.get("logged", []), case)


def run_in_process(name: str, caplog, request) -> None:
    case, expect = read_case(name)
    overrides = [fill(override, case) for override in expect["overrides"]]
    caplog.set_level(logging.INFO)
    try:
        cfg, task, splits = start_up(overrides)
        if expect["run"] == "predictions":  # at start-up once pipeline.py calls it; today, after training
            join = join_logged_answers(cfg.baseline.predictions, [example.id for example in splits.test])
    except Exception as err:  # any exception is judged: it must be a user error with the right message
        if "error" not in expect:
            raise
        check_error(err, expect["error"], case)
        return
    assert "error" not in expect, f"no error raised; expected {expect['error']['contains']}"
    anomaly = expect["anomaly"]
    check_anomaly(anomaly, case, cfg, task, splits, caplog, request)
    if expect["run"] == "predictions":
        assert (len(join.missing), len(join.unmatched)) == (anomaly["missing_ids"], anomaly["unmatched_ids"])


def check_cli_result(result: subprocess.CompletedProcess, expected: dict, case: Path, run: Path) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.returncode == expected["exit_code"], result.stderr[-3000:]
    for text in expected["contains"]:
        assert fill(text, case, run) in result.stderr, f"{fill(text, case, run)!r} not in:\n{result.stderr[-3000:]}"


REPORTS = ("report.md", "report.html", "routing.yaml")
RESULTS = ("metrics.json", "training.json", "predictions", "adapter", "model", *REPORTS)


def check_nothing_to_trust(run: Path, names: tuple[str, ...]) -> None:
    """A command that stopped leaves nothing a later one would take for a finished result."""
    for name in names:
        assert not (run / name).exists(), f"{run / name} was left behind"


def without_hydra_full_error(extra: dict | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return {**env, **(extra or {})}


def run_cli_train(name: str, tmp_path: Path) -> None:
    case, expect = read_case(name)
    run = tmp_path / "run"
    overrides = [fill(override, case) for override in expect["overrides"]]
    train = [str(REPO / "train.py"), *overrides, f"hydra.run.dir={run}", f"cache_dir={tmp_path / 'cache'}"]
    check_cli_result(run_python(train, expect), expect["error"], case, run)
    check_nothing_to_trust(run, RESULTS)


def run_python(arguments: list[str], expect: dict) -> subprocess.CompletedProcess:
    """`python <arguments>` from the repo root, as a user runs it (HYDRA_FULL_ERROR unset)."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=without_hydra_full_error(expect.get("env")),
        timeout=300,
    )


def copy_run(case: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(case / "run", run)
    return run


def run_cli_report(name: str, tmp_path: Path) -> None:
    case, expect = read_case(name)
    run = copy_run(case, tmp_path)
    check_cli_result(run_python(["-m", "slmtier", "report", str(run)], expect), expect["error"], case, run)
    check_nothing_to_trust(run, REPORTS)


def run_report_in_process(name: str, tmp_path: Path, capsys) -> None:
    from slmtier.cli.main import main

    case, expect = read_case(name)
    run = copy_run(case, tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(run)])
    captured = capsys.readouterr()
    result = subprocess.CompletedProcess([], exit_.value.code, captured.out, captured.err)
    check_cli_result(result, expect["error"], case, run)
    check_nothing_to_trust(run, REPORTS)


def run_cli_run(name: str, tmp_path: Path, request) -> None:
    """`python train.py` to the end on the tiny test model, then the aggregate report over that run; the
    Markdown both wrote is checked as a Markdown viewer shows it."""
    from slmtier.cli.main import main

    case, expect = read_case(name)
    work = tmp_path / "work"
    for target, source in expect.get("files", {}).items():
        (work / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(case / source, work / target)
    run = work / expect.get("run_dir", "run")
    tiny_model = str(request.getfixturevalue("tiny_model_dir"))
    overrides = [fill(o, case, run).replace("{work}", str(work)).replace("{tiny_model}", tiny_model)
                 for o in expect["overrides"]]  # fmt: skip
    train = [str(REPO / "train.py"), *overrides, f"hydra.run.dir='{run}'", f"cache_dir={tmp_path / 'cache'}"]
    result = run_python(train, expect)
    assert result.returncode == 0, result.stderr[-3000:]
    main(["report", str(run), "--out", str(work / "aggregate")])
    for path in (run / "report.md", work / "aggregate" / "report.md"):
        check_markdown(path, expect["anomaly"]["markdown"])


def check_markdown(path: Path, expected: dict) -> None:
    """What a Markdown viewer shows: no raw HTML tag of `no_tags`, every table's rows with as many cells as its
    header, and in the table whose header starts with a `first_column` key, exactly those rows as written."""
    from markdown_it import MarkdownIt

    text = path.read_text(encoding="utf-8")
    parser = MarkdownIt("commonmark").enable("table")  # raw HTML on, as in most viewers
    html = parser.render(text)
    for tag in expected.get("no_tags", []):
        found = re.search(rf"<{tag}\b[^>]*>?", html, flags=re.IGNORECASE)
        assert found is None, f"{path}: a raw <{tag}> tag survives: {found and found.group(0)!r}"
    lines = text.splitlines()
    tables, in_cell = [], False  # [[cell texts of each row]] per table, header row first
    for token in parser.parse(text):
        if token.type == "table_open":
            separators = {len(re.findall(r"(?<!\\)\|", lines[i])) for i in range(*token.map)}
            assert len(separators) == 1, f"{path}:{token.map[0] + 1}: rows with {sorted(separators)} separators"
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type in ("th_open", "td_open", "th_close", "td_close"):
            in_cell = token.type.endswith("_open")
        elif token.type == "inline" and in_cell:  # a cell's text as shown (escapes and entities resolved)
            tables[-1][-1].append("".join(child.content for child in token.children or []))
    for header, rows in expected.get("first_column", {}).items():
        found = [[row[0] for row in table[1:]] for table in tables if table[0][0] == header]
        assert found, f"{path}: no table whose header starts with {header!r}"
        for column in found:
            assert column == rows, f"{path}: the {header!r} table lists {column}"


def test_corpus_covers_the_issue():
    assert len(CASES) > 50
    required = REQUIRED | REQUIRED_15
    assert required <= set(CASES), f"missing cases: {sorted(required - set(CASES))}"
    for name in CASES:
        _, expect = read_case(name)
        assert ("error" in expect) != ("anomaly" in expect), f"{name}: say either error or anomaly"
        assert expect["run"] in {"startup", "predictions", "cli_train", "cli_report", "report", "cli_run"}, name


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, tmp_path, caplog, capsys, request):
    kind = read_case(name)[1]["run"]
    if kind in ("startup", "predictions"):
        run_in_process(name, caplog, request)
    elif kind == "cli_train":
        run_cli_train(name, tmp_path)
    elif kind == "cli_report":
        run_cli_report(name, tmp_path)
    elif kind == "cli_run":
        run_cli_run(name, tmp_path, request)
    else:
        run_report_in_process(name, tmp_path, capsys)
