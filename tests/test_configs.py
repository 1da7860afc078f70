"""Every shipped config and recipe composes against the schema; typos fail at start-up."""

from typing import Any

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from helpers.files import REPO
from helpers.processes import run_train_cli
from slmtier.config import CONFIG_DIR, RunConfig, compose_config, to_run_config
from slmtier.errors import SlmtierError

RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
GROUPS = ["model", "lora", "trainer", "encoder", "inference", "baseline", "decision", "tracking", "pricing", "hardware"]
# Values a group option leaves required (???), as a user would give them.
REQUIRED = {("baseline", "predictions"): ["baseline.predictions.path=logs/llm.jsonl"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose_run(*overrides: str) -> RunConfig:
    return to_run_config(compose_config(overrides))


def compose_group(group: str, *overrides: str) -> dict:
    """One group of the composed config (ticket_classifier sets none of the groups), as plain values."""
    return OmegaConf.to_container(compose_config(["recipe=ticket_classifier", *overrides])[group])


SCHEMA = OmegaConf.to_container(OmegaConf.structured(RunConfig))  # a required (MISSING) value reads "???"
DEFAULT_CHOICES = {
    group: choice
    for entry in OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "train.yaml"))["defaults"]
    if isinstance(entry, dict)
    for group, choice in entry.items()
    if not group.startswith("override ")  # Hydra's own groups (hydra/help), not slmtier's
}


def leaves(node: Any, path: tuple = ()) -> dict[tuple, Any]:
    """Every value of a nested dict by its key path; lists and empty dicts are values."""
    if isinstance(node, dict) and node:
        return {key: value for name, child in node.items() for key, value in leaves(child, (*path, name)).items()}
    return {path: node}


def option_file(group: str, option: str) -> dict[tuple, Any]:
    """The values an option file itself sets (not what it composes to)."""
    values = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml"))
    return leaves(values) if values else {}


def schema_default(group: str, key: tuple) -> Any:
    node = SCHEMA[group]
    for name in key:
        if not isinstance(node, dict) or name not in node:
            return "???"  # no default in the schema (a free-form dict such as pricing.models)
        node = node[name]
    return node


def test_every_group_has_its_default_choice():
    assert set(DEFAULT_CHOICES) - {"recipe"} == set(GROUPS)
    for group in GROUPS:
        assert DEFAULT_CHOICES[group] in options(group)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_option_files_set_only_what_differs_from_the_schema(group, option):
    """One home per default value (slmtier/config.py says why it is the schema): a value an option file restates
    is a copy that drifts the day the schema's changes."""
    restated = [
        ".".join(map(str, key))
        for key, value in option_file(group, option).items()
        if schema_default(group, key) != "???" and value == schema_default(group, key)
    ]
    assert not restated, f"configs/{group}/{option}.yaml restates the schema's defaults of {restated}; drop them"


@pytest.mark.parametrize("group", [g for g in GROUPS if DEFAULT_CHOICES[g] == "default"])
def test_a_groups_default_is_the_schema(group):
    """trainer=default said learning_rate 1e-3 and warmup 0.05 while TrainerConfig said 2e-4 and 0.0."""
    assert not option_file(group, "default"), f"configs/{group}/default.yaml should set nothing"
    assert compose_group(group) == SCHEMA[group]


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g) if o != DEFAULT_CHOICES[g]])
def test_options_keep_every_default_they_do_not_set(group, option):
    """trainer=smoke set four keys and silently dropped the default's warmup. Options of a group with a
    `default` extend it; options of a group of peers (model, encoder, hardware, ...) extend the schema, not
    the default peer (qwen3_8b must not inherit smollm2_135m's memory figures)."""
    base = compose_group(group) if DEFAULT_CHOICES[group] == "default" else SCHEMA[group]
    composed = leaves(compose_group(group, f"{group}={option}", *REQUIRED.get((group, option), [])))
    set_here = option_file(group, option)
    lost = {
        ".".join(map(str, key)): (value, composed.get(key))
        for key, value in leaves(base).items()
        if not any(key[: len(own)] == own or own[: len(key)] == key for own in set_here) and composed.get(key) != value
    }
    assert not lost, f"{group}={option} changes keys it does not set (default, now): {lost}"


def test_full_finetuning_is_a_trainer_choice_not_a_lora_option():
    cfg = compose_run("recipe=ticket_classifier", "trainer.finetune=full")
    assert cfg.trainer.finetune == "full"
    assert not (REPO / "configs" / "lora" / "full.yaml").exists()
    # The encoder's adapter keys are the SLM's names, one level down.
    cfg = compose_run("recipe=ticket_classifier", "encoder.finetune=lora", "encoder.lora.r=8")
    assert (cfg.encoder.lora.r, cfg.encoder.lora.lora_alpha) == (8, 32) and cfg.lora.r == 16
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_run("recipe=ticket_classifier", "encoder.lora_r=8")


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


def test_unknown_recipe_names_the_options():
    result = run_train_cli("recipe=ticket_clasifier")
    assert result.returncode != 0
    assert "ticket_clasifier" in result.stderr and "ticket_classifier" in result.stderr
    assert "Traceback" not in result.stderr


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


def test_a_key_added_with_plus_that_the_schema_lacks_is_refused(tmp_path):
    cfg = compose_config(["recipe=ticket_classifier", "+trainer.lerning_rate=0.01"])
    with pytest.raises(
        SlmtierError, match=r"unknown config key trainer.lerning_rate; did you mean trainer.learning_rate"
    ):
        to_run_config(cfg)
    # Free-form mappings stay free: the chat template's arguments are the model's, not slmtier's.
    cfg = compose_config(["recipe=ticket_classifier", "+model.chat_template_kwargs.enable_thinking=false"])
    assert to_run_config(cfg).model.chat_template_kwargs == {"enable_thinking": False}
    result = run_train_cli("recipe=ticket_classifier", "+lora.rr=4", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "did you mean lora.r?" in result.stderr and "Traceback" not in result.stderr
