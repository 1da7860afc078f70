"""scripts/gpu_check.py is for whoever has a GPU; its code path (training, label scoring, the encoder) is smoke-tested
here on the CPU."""

import json
import subprocess
import sys

from helpers.files import REPO


def test_gpu_check_runs_its_tiny_shape_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--tiny",
               "--steps", "2", "--batch", "2", "--seq", "32", "--prompts", "8", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    rows = {row.get("setting", row.get("part")): row for row in report["results"]}
    assert set(rows) == {"reference", "lora_bf16", "label_scoring", "encoder"}
    assert rows["reference"]["useful_tokens_per_s"] > 0 and rows["lora_bf16"]["ratio_to_reference"] > 0
    scoring = rows["label_scoring"]
    assert scoring["examples"] == 8 and min(scoring["examples_per_s"].values()) > 0 and scoring["ratio"] > 0
    encoder = rows["encoder"]
    assert encoder["train_ratio"] > 0 and encoder["per_request_p95_ms"] >= encoder["per_request_p50_ms"] > 0
    assert encoder["batched_examples_per_s"] > 0


def test_gpu_check_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        return
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py")], capture_output=True, text=True)
    assert result.returncode != 0 and "no CUDA GPU here" in result.stderr
