"""The `slmtier` command: recipes listing, the train forwarder, and what a config mistake on the command line
prints (one message, exit code 2, a "did you mean" where a known name is close)."""

import subprocess
import sys

import pytest

from helpers.files import REPO
from helpers.processes import run_train_cli
from slmtier.cli.errors import describe_missing_option, describe_unknown_key
from slmtier.cli.main import main


@pytest.fixture(autouse=True)
def as_a_user_runs_it(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # Hydra's stack traces are opt-in


def test_recipes_lists_every_shipped_recipe(capsys):
    main(["recipes"])
    out = capsys.readouterr().out
    for path in (REPO / "recipes").glob("*.yaml"):
        assert path.stem in out
    assert "python train.py recipe=ticket_classifier" in out


def test_train_forwards_to_hydra():
    result = subprocess.run(
        [sys.executable, "-m", "slmtier", "train", "recipe=nope"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2
    assert "error: recipe has no option 'nope'" in result.stderr and "ticket_classifier" in result.stderr


def assert_one_message(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 2 and one `error:` line holding message: no traceback, no HYDRA_FULL_ERROR advice."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.validation_holdot=5",
            "unknown config key data.validation_holdot; did you mean data.validation_holdout?",
        ),
        ("lora.rr=4", "unknown config key lora.rr; did you mean lora.r?"),
        ("dta.validation_holdout=5", "did you mean data.validation_holdout?"),  # the typo above the leaf
        ("model=smolm2_135m", "model has no option 'smolm2_135m'; did you mean model=smollm2_135m?"),
        ("trainer.max_steps=abc", "trainer.max_steps: Value 'abc' of type 'str' could not be converted to Integer"),
        ("data.train=[", "cannot read the override 'data.train=['"),
    ],
)
def test_config_mistake_exits_2_with_a_hint(tmp_path, override, message):
    run = tmp_path / "run"
    assert_one_message(run_train_cli("recipe=ticket_classifier", override, f"hydra.run.dir={run}"), message)
    assert not run.exists()  # stopped at start-up


def test_a_config_mistake_ends_the_command_before_the_training_stack_is_imported(tmp_path):
    """torch, transformers and peft take seconds to import; Hydra's check of the config comes first."""
    heavy = "{'torch', 'transformers', 'peft'}"
    code = (f"import atexit, sys; atexit.register(lambda: print(sorted({heavy} & set(sys.modules))));"
            f"sys.argv = ['train.py', 'recipe=ticket_classifier', 'lora.rr=4', 'hydra.run.dir={tmp_path}'];"
            "from slmtier.cli.main import train; train()")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "lora.rr" in result.stderr, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_missing_recipe_says_how_to_choose_one():
    result = run_train_cli()
    assert_one_message(result, "say which recipe to use: add recipe=NAME to the command")
    assert "ticket_classifier" in result.stderr


def test_sweep_config_mistake_exits_2_with_a_hint(tmp_path):
    result = run_train_cli("-m", "recipe=ticket_classifier", "lora.rr=4,8", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert_one_message(result, "unknown config key lora.rr; did you mean lora.r?")


def test_show_config_and_config_dir_still_work(tmp_path):
    (tmp_path / "recipe").mkdir()  # a user's own recipe in their own config folder
    recipe = (REPO / "recipes" / "ticket_classifier.yaml").read_text(encoding="utf-8")
    (tmp_path / "recipe" / "mine.yaml").write_text(recipe, encoding="utf-8")
    shown = run_train_cli("--config-dir", str(tmp_path), "recipe=mine", "lora.r=4", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "  r: 4\n" in shown.stdout and "task:" in shown.stdout
    helped = run_train_cli("recipe=ticket_classifier", "--help")
    assert helped.returncode == 0 and "== Config groups" in helped.stdout
    typo = run_train_cli("--config-dir", str(tmp_path), "recipe=mine", "lora.rr=4", "--cfg", "job")
    assert_one_message(typo, "did you mean lora.r?")
    missing = run_train_cli("--config-dir", str(tmp_path / "nope"), "recipe=ticket_classifier", "--cfg", "job")
    assert_one_message(missing, "Additional config directory")


def test_hydra_full_error_keeps_hydras_stack_trace(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    result = run_train_cli("recipe=ticket_classifier", "lora.rr=4", "--cfg", "job")
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigCompositionException" in result.stderr


def test_hints_name_the_closest_key_or_option_or_list_them():
    assert describe_unknown_key("task.lables", ["kind", "labels", "fields"]).endswith("did you mean task.labels?")
    assert describe_unknown_key("zzz", ["task", "data"]) == "unknown config key zzz; the top level has: task, data"
    assert describe_missing_option("hydra/launcher/bsic", ["basic", "slurm"]).startswith(
        "hydra/launcher has no option 'bsic'; did you mean hydra/launcher=basic?"
    )


def test_train_help_needs_no_recipe():
    result = run_train_cli("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("python train.py recipe=NAME")
    assert "lora: default, dora, qlora" in result.stdout and "recipe: banking77," in result.stdout
    assert "here for recipe=ticket_classifier" in result.stdout and "instruction:" in result.stdout
