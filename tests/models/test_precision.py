"""Which passes run under bf16 autocast. Greedy decoding stays in fp32 on a CPU by default: there bf16 buys no
speed, and its rounding depends on the batch a request is decoded in, so the router (which batches whatever
arrives together) would not serve what the benchmark measured."""

from __future__ import annotations

import pytest
import torch

from slmtier.benchmark.candidates import LocalCandidate
from slmtier.config import FieldSpec, ModelConfig, RunConfig, TaskConfig
from slmtier.data import Example
from slmtier.models import load_model, load_tokenizer, loading, resolve_bf16, resolve_generate_bf16
from slmtier.tasks import build_task
from slmtier.tiers import slm


def test_decoding_is_fp32_on_a_cpu_and_bf16_on_a_bf16_gpu_unless_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_generate_bf16(None) is False
    assert resolve_generate_bf16(True) is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_generate_bf16(None) is True
    assert resolve_generate_bf16(False) is False


def test_cpu_bf16_needs_the_instructions_and_a_measured_speedup(monkeypatch):
    """On a CPU, null means bf16 only where it is native (AVX512-BF16 or AMX) and a bf16 matmul measured faster
    than fp32: one AVX512-BF16 Xeon ran bf16 matmuls at half the fp32 speed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    probes = []
    monkeypatch.setattr(loading, "cpu_bf16_speedup", lambda: probes.append(1) or speedup)
    for native, speedup, expected in ((True, 2.4, True), (True, 0.52, False), (True, 1.1, False), (False, 3.0, False)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        probes.clear()
        assert resolve_bf16(None) is expected, (native, speedup)
        assert len(probes) == (1 if native else 0)  # no instructions: nothing to measure
        assert resolve_bf16(True) is True and resolve_bf16(False) is False


def test_the_bf16_probe_measures_this_cpu():
    loading.cpu_bf16_speedup.cache_clear()
    speedup = loading.cpu_bf16_speedup()
    assert 0 < speedup < 100 and loading.cpu_bf16_speedup() == speedup  # measured once per process


def test_the_slm_tier_takes_its_decoding_precision_from_generate_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = RunConfig()
    cfg.inference.bf16, cfg.inference.generate_bf16 = True, None
    settings = slm.local_settings(cfg)
    assert settings["bf16"] is True and settings["generate_bf16"] is False


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    cfg = ModelConfig(name="tiny", source=str(tiny_model_dir))
    return load_model(str(tiny_model_dir), cfg), load_tokenizer(str(tiny_model_dir), cfg)


def generate(tiny, *, batch_size: int, bf16: bool, generate_bf16: bool, examples):
    model, tokenizer = tiny
    fields = [FieldSpec(name="order_id"), FieldSpec(name="total")]
    task = build_task(TaskConfig(kind="extraction", instruction="Fields: {fields}.", fields=fields))
    candidate = LocalCandidate("slm", "tiny", model, tokenizer, batch_size=batch_size, max_new_tokens=6,
                               bf16=bf16, generate_bf16=generate_bf16)  # fmt: skip
    return candidate.predict(task, examples)


def test_fp32_decoding_gives_the_same_answer_batched_and_alone_and_bf16_scoring_does_not_leak_into_it(tiny):
    # Inputs of different lengths: a batch pads them, which changes the matrix shapes the rows are computed in.
    examples = [Example(str(i), "Order " + "very " * (i * 3) + f"late, id {i}.", {}) for i in range(6)]
    batched = generate(tiny, batch_size=6, bf16=True, generate_bf16=False, examples=examples)
    alone = [generate(tiny, batch_size=1, bf16=True, generate_bf16=False, examples=[e])[0] for e in examples]
    for together, single in zip(batched, alone, strict=True):
        assert together.raw_output == single.raw_output
        assert together.token_logprobs == pytest.approx(single.token_logprobs, abs=1e-4)
    # The switch is live: decoding under bf16 autocast moves the token log-probabilities.
    rounded = generate(tiny, batch_size=6, bf16=False, generate_bf16=True, examples=examples)
    gaps = [abs(a - b) for r, f in zip(rounded, batched, strict=True)
            for a, b in zip(r.token_logprobs, f.token_logprobs, strict=False)]  # fmt: skip
    assert max(gaps) > 1e-3
