"""LoRA and QLoRA training speed and peak memory on a CUDA GPU, with no network: random-weight models built
from the real architectures' sizes (Qwen2.5-0.5B and -7B by default), random tokens, slmtier's LoRA settings.

    python scripts/gpu_check.py                           # on a CUDA machine: bf16 LoRA and QLoRA, 0.5B and 7B
    python scripts/gpu_check.py --sizes 0.5b --modes lora_bf16 --steps 20 --out bench/gpu.json
    python scripts/gpu_check.py --device cpu --tiny       # a seconds-long smoke run of the same code on a CPU

Prints tokens/s (every token is real: no padding) and peak GPU memory per (size, mode). Weights are random,
so losses mean nothing; speed and memory are those of the real shapes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from slmtier.config import LoraConfig
from slmtier.training import build_peft_config

# Published configs of the real checkpoints (config.json on the hub), so nothing is downloaded.
SIZES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
}  # fmt: skip
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(size: str, mode: str, device: str, folder: Path):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Qwen2Config

    config = Qwen2Config(**SIZES[size], max_position_embeddings=4096, tie_word_embeddings=size != "7b")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    if mode == "lora_bf16":
        return AutoModelForCausalLM.from_config(config, dtype=dtype).to(device)
    # QLoRA loads through bitsandbytes, which quantises while loading: save the random model first.
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map={"": 0})


def measure(size: str, mode: str, *, device: str, steps: int, batch: int, seq: int) -> dict:
    from peft import get_peft_model, prepare_model_for_kbit_training

    with tempfile.TemporaryDirectory() as folder:
        model = build_model(size, mode, device, Path(folder))
        if mode == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, build_peft_config(LoraConfig(r=16, lora_alpha=32), TARGETS))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        vocab = SIZES[size]["vocab_size"]
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        timings = []
        for step in range(steps + 2):  # two warm-up steps
            ids = torch.randint(0, vocab, (batch, seq), device=device)
            began = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 2:
                timings.append(time.perf_counter() - began)
    return {
        "size": size,
        "mode": mode,
        "tokens_per_s": round(batch * seq * len(timings) / sum(timings), 1),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "batch": batch,
        "seq": seq,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "7b"], choices=sorted(SIZES))
    parser.add_argument("--modes", nargs="+", default=["lora_bf16", "qlora"], choices=["lora_bf16", "qlora"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="the tiny shape only, bf16 LoRA only (a smoke run)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; use --device cpu --tiny for a smoke run")
    sizes, modes = (["tiny"], ["lora_bf16"]) if args.tiny else (args.sizes, args.modes)
    results = []
    for size in sizes:
        for mode in modes:
            row = measure(size, mode, device=args.device, steps=args.steps, batch=args.batch, seq=args.seq)
            print(json.dumps(row), flush=True)
            results.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
        args.out.write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
