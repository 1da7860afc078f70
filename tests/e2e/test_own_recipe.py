"""A new user's own task, with no code change: their data files and one recipe file in their own folder,
run with `python train.py --config-dir <folder> recipe=<name>` from that folder. One test per task kind."""

import json

import pytest

from helpers.files import REPO, read_jsonl, write_jsonl
from helpers.processes import run_train_cli

CLASSIFY = """# @package _global_
# Is a review positive or negative?   python train.py --config-dir my_recipes recipe=reviews
task:
  kind: classification
  instruction: "Is this product review positive or negative? Answer with one word: {labels}."
  labels: [positive, negative]
data:
  train: my_data/reviews_train.csv
  test: my_data/reviews_test.csv
  id_field: null
  target_field: sentiment
"""

EXTRACT = """# @package _global_
# Invoice number and total from supplier emails.   python train.py --config-dir my_recipes recipe=invoices
task:
  kind: extraction
  instruction: "Extract from the supplier email, as one JSON object with these keys:\\n{fields}"
  fields:
    - {name: invoice, type: string, case_sensitive: true}
    - {name: total, type: number}
data:
  train: my_data/invoices_train.jsonl
  test: my_data/invoices_test.jsonl
  target_field: answer
"""

SUMMARISE = """# @package _global_
# One-line digest of a status update.   python train.py --config-dir my_recipes recipe=digest
task:
  kind: summarization
  instruction: Summarise the status update in one sentence.
  similarity_model: ""
data:
  train: my_data/digest_train.jsonl
  test: my_data/digest_test.jsonl
  text_field: body
  target_field: digest
"""


def write_reviews(folder):
    rows = ["text,sentiment"] + [
        f'"Review {i}: {"great, works well" if i % 2 else "broke after a day"}",{"positive" if i % 2 else "negative"}'
        for i in range(12)
    ]
    (folder / "reviews_train.csv").write_text("\n".join(rows[:1] + rows[5:]) + "\n")  # held-out test rows
    (folder / "reviews_test.csv").write_text("\n".join(rows[:5]) + "\n")


def write_invoices(folder):
    rows = [
        {
            "id": f"i{i}",
            "text": f"Please find invoice INV-{100 + i} attached, total {20 * i} EUR.",
            "answer": {"invoice": f"INV-{100 + i}", "total": 20 * i},
        }
        for i in range(12)
    ]
    write_jsonl(folder / "invoices_train.jsonl", rows[4:])
    write_jsonl(folder / "invoices_test.jsonl", rows[:4])


def write_digests(folder):
    rows = [
        {
            "id": f"d{i}",
            "body": f"Week {i}: the migration is {10 * i}% done and the team is on track.",
            "digest": f"Migration {10 * i}% done, on track.",
        }
        for i in range(10)
    ]
    write_jsonl(folder / "digest_train.jsonl", rows[3:])
    write_jsonl(folder / "digest_test.jsonl", rows[:3])


@pytest.mark.parametrize(
    ("name", "recipe", "write_data", "metric", "n_test"),
    [
        ("reviews", CLASSIFY, write_reviews, "accuracy", 4),
        ("invoices", EXTRACT, write_invoices, "micro_f1", 4),
        ("digest", SUMMARISE, write_digests, "rougeL", 3),
    ],
)
def test_own_recipe_from_own_folder(tiny_model_dir, tmp_path, name, recipe, write_data, metric, n_test):
    (tmp_path / "my_recipes" / "recipe").mkdir(parents=True)
    (tmp_path / "my_recipes" / "recipe" / f"{name}.yaml").write_text(recipe)
    (tmp_path / "my_data").mkdir()
    write_data(tmp_path / "my_data")

    result = run_train_cli(
        "--config-dir",
        "my_recipes",
        f"recipe={name}",
        f"model.source={tiny_model_dir}",
        "model.name=tiny",
        "trainer=smoke",
        "inference.max_new_tokens=8",
        "baseline.few_shot_k=1",
        f"cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((tmp_path / "runs" / name / "tiny").iterdir())
    assert len(run_dirs) == 1  # the run lands under the user's folder, not the repo
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["recipe"] == name and metrics["primary_metric"] == metric
    assert len(read_jsonl(run_dirs[0] / "predictions" / "slm.jsonl")) == n_test
    assert not (REPO / "runs" / name).exists()
