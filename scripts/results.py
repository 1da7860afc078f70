"""Run every recipe with the embedded SmolLM2-135M on this machine and put the results table in docs/results.md.

    python scripts/results.py                    # run all recipes (about 1.5 hours on 2 CPU cores), then the table
    python scripts/results.py --only banking77   # run some
    python scripts/results.py --collect          # rebuild the table from the last runs only
    python scripts/results.py --force            # rerun recipes that already have results

A recipe whose results/runs/<name>/report.md exists is not run again (rerunning after a crash or a kill
continues with the recipes still missing); a recipe that fails is reported and the others still run.

Each recipe runs as `python train.py recipe=<name> <overrides>` into results/runs/<name>; the overrides
below subsample the large public sets so each run fits in roughly ten CPU minutes (banking77 runs at full size:
its encoder tier trains on every row, its generative tier on the recipe's sample), and the table says so.
The table lands in results/README.md and between the results markers of docs/results.md (the manual's results page).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from slmtier.report.markdown import code_span, escape_markdown
from slmtier.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
DOCS_PAGE = ROOT / "docs" / "results.md"  # the page whose results markers receive the table
RUNS = ROOT / "results" / "runs"
QMSUM = ROOT / "build" / "data" / "qmsum_product"
SHARED = ROOT.parent / "shared" / "data"

# recipe -> Hydra overrides: subsampling (seeded random samples) so a CPU run stays near ten minutes.
RECIPES: dict[str, list[str]] = {
    "ticket_classifier": [],
    "order_extractor": [],
    "call_summarizer": [],
    "banking77": [],  # full size: the encoder on all 9,503 train rows, the SLM on the recipe's 400-row sample
    "restaurant8k": ["data.max_train_examples=600", "data.max_test_examples=300"],
    "qmsum_product": ["data.max_train_examples=120", "data.max_test_examples=40"],
}
START, END = "<!-- results:start -->", "<!-- results:end -->"


def run_recipe(name: str) -> None:
    if name == "qmsum_product" and not (QMSUM / "train.jsonl").is_file():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "convert_qmsum.py"), str(SHARED / "qmsum_product"), str(QMSUM)],
            check=True,
        )
    command = [sys.executable, str(ROOT / "train.py"), f"recipe={name}", *RECIPES[name], f"hydra.run.dir={RUNS / name}"]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def table_row(name: str) -> str:
    metrics = RunDir(RUNS / name).read_metrics()
    candidates, metric, data = metrics.candidates, metrics.primary_metric, metrics.data
    training = metrics.tiers["slm"].training if "slm" in metrics.tiers else None
    encoder = metrics.tiers["encoder"].training if "encoder" in metrics.tiers else None
    subsample = [o.removeprefix("data.") for o in RECIPES[name]]
    if training and training["examples"] < data["train"]["n"]:
        subsample.append(f"SLM trained on {training['examples']}")
    if data["validation"]["path"] is None and data["validation"]["n"]:
        subsample.append(f"{data['validation']['n']} train rows held out as validation")

    def quality(tier: str) -> str:
        return f"{candidates[tier]['quality']['value']:.3f}" if tier in candidates else "–"

    def minutes(block: dict | None) -> str:
        return f"{block['runtime_s'] / 60:.1f} min" if block else "–"

    return (
        f"| {code_span(name, cell=True)} | {metrics.task_kind} | {data['train']['n']} / "
        f"{data['test']['n']} | {', '.join(subsample) or 'full splits'} | {escape_markdown(metric)} "
        f"| {quality('baseline')} | {quality('slm')} | {quality('encoder')} "
        f"| **{escape_markdown(metrics.verdict)}** | {minutes(training)} "
        f"| {minutes(encoder['training'] if encoder else None)} |"
    )


def render_table(names: list[str]) -> str:
    rows = [table_row(name) for name in names if (RUNS / name / "metrics.json").is_file()]
    header = (
        "| recipe | kind | train / test rows | subsample | metric | baseline (untuned, few-shot) | fine-tuned SLM "
        "| fine-tuned encoder | verdict | SLM training | encoder training |\n" + "|---" * 11 + "|"
    )
    note = (
        "Embedded SmolLM2-135M-Instruct, LoRA r=16, one epoch, bf16 autocast, on a 2-core CPU; encoder = the "
        "embedded all-MiniLM-L6-v2 with a classification head, every weight fine-tuned for 4 epochs (classification "
        "recipes); baseline = the SLM's base model without the adapter, prompted with the recipe's few-shot examples. "
        "Subsamples are seeded random samples (`data.sample_seed=0`) kept in file order; the public sets have no "
        "validation split, and qmsum_product inputs are the query's relevant transcript turns cut at 500 words. "
        "The verdict here only says a tier beats the same small model untuned (it names the cheapest tier that "
        "does). It is not the comparison with a GPT-4-class LLM: that needs your endpoint or your logs "
        "(see docs/llm-tier.md). "
        "Regenerate: `make results` (about 1.5 hours)."
    )
    return "\n".join([header, *rows, "", note])


def write_table(table: str) -> None:
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "README.md").write_text(f"# Results\n\n{table}\n", encoding="utf-8")
    replace_block(DOCS_PAGE, table)


def replace_block(page: Path, table: str) -> None:
    """Put the table between the results markers of `page`; a page without them is said, not skipped silently."""
    text = page.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{page}: no {START} ... {END} block; the table is in results/README.md only", file=sys.stderr)
        return
    head, rest = text.split(START, 1)
    page.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(RECIPES), help="run only these recipes")
    parser.add_argument("--collect", action="store_true", help="do not run; rebuild the table from results/runs")
    parser.add_argument("--force", action="store_true", help="rerun recipes that already have results")
    args = parser.parse_args()
    failed = []
    if not args.collect:
        for name in args.only or list(RECIPES):
            if (RUNS / name / "report.md").is_file() and not args.force:
                print(f"{name}: already done ({RUNS / name}); --force reruns it")
                continue
            if args.force:  # a fresh run: the old directory holds another config, which train.py will not mix
                shutil.rmtree(RUNS / name, ignore_errors=True)
            try:
                run_recipe(name)
            except subprocess.CalledProcessError as err:
                failed.append(name)
                print(f"{name}: failed ({err}); see its output above", file=sys.stderr)
    table = render_table(list(RECIPES))
    write_table(table)
    print(table)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
