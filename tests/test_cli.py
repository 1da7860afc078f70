"""The `slmtier` command: recipes listing and the train forwarder."""

import subprocess
import sys

from conftest import REPO
from slmtier.cli.main import main


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
    assert result.returncode != 0
    assert "Could not find 'recipe/nope'" in result.stderr and "ticket_classifier" in result.stderr
