"""Every shipped config and recipe composes against the schema; typos fail at start-up."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from conftest import REPO, run_train_cli
from slmtier.config import CONFIG_DIR, RunConfig, register_configs

register_configs()
RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
GROUPS = ["model", "lora", "trainer", "encoder", "inference", "baseline", "decision", "tracking", "pricing", "hardware"]
# Values a group option leaves required (???), as a user would give them.
REQUIRED = {("baseline", "predictions"): ["baseline.predictions.path=logs/llm.jsonl"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose_run(*overrides: str) -> RunConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=list(overrides)))


def test_recipes_exist_and_open_with_header_and_command():
    assert "ticket_classifier" in RECIPES
    for name in RECIPES:
        lines = (REPO / "recipes" / f"{name}.yaml").read_text().splitlines()
        assert lines[0] == "# @package _global_"
        assert f"recipe={name}" in lines[1], f"{name}: line 2 should say how to run it"


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes(recipe):
    cfg = compose_run(f"recipe={recipe}")
    assert isinstance(cfg, RunConfig)
    assert cfg.task.instruction and cfg.data.train and cfg.data.test


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    compose_run("recipe=ticket_classifier", f"{group}={option}", *REQUIRED.get((group, option), []))


def test_unknown_key_fails_at_compose():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_run("recipe=ticket_classifier", "lora.rr=4")


def test_wrong_type_fails_at_compose():
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_run("recipe=ticket_classifier", "trainer.learning_rate=fast")


def test_no_recipe_lists_the_available_ones():
    result = run_train_cli()
    assert result.returncode != 0
    assert "recipe" in result.stderr and "ticket_classifier" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_recipe_names_the_options():
    result = run_train_cli("recipe=ticket_clasifier")
    assert result.returncode != 0
    assert "ticket_clasifier" in result.stderr and "ticket_classifier" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_typo_fails_before_any_work(tmp_path):
    result = run_train_cli("recipe=ticket_classifier", "lora.rr=4", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert "rr" in result.stderr and "Traceback" not in result.stderr
    assert not Path(tmp_path, "run", "adapter").exists()


def test_unreachable_hub_model_is_a_clear_error(monkeypatch, tmp_path):
    from slmtier.config import ModelConfig
    from slmtier.errors import ModelSourceError
    from slmtier.models import load_tokenizer, resolve_model_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing to fall back on
    cfg = ModelConfig(name="nope", source="no-such-org/no-such-model")
    path = resolve_model_path(cfg, tmp_path)
    assert path == "no-such-org/no-such-model"
    with pytest.raises(ModelSourceError, match="could not be loaded from 'no-such-org/no-such-model'"):
        load_tokenizer(path, cfg)
    with pytest.raises(ModelSourceError, match="no such folder"):
        resolve_model_path(ModelConfig(name="x", source="./missing-folder"), tmp_path)
    with pytest.raises(ModelSourceError, match="not an embedded model"):
        resolve_model_path(ModelConfig(name="x", source="embedded:gpt-17"), tmp_path)
