"""The training speed-ups change nothing the model learns: TRL's fused LM head over the answer positions
only gives the same loss and gradients as over every position; the attention choice follows the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slmtier.config import TrainerConfig
from slmtier.training import resolve_attn_implementation, score_answer_positions_only


def loss_and_grads(model, batch: dict) -> tuple[float, dict]:
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), grads


def test_answer_positions_only_gives_the_same_loss_and_gradients(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)
    input_ids = torch.randint(5, model.config.vocab_size, (3, 40))
    labels = torch.full_like(input_ids, -100)
    labels[0, 30:34] = input_ids[0, 30:34]  # a few answer tokens per row, as in classification
    labels[1, 10:12] = input_ids[1, 10:12]
    labels[2, 35:] = input_ids[2, 35:]
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    every_position = loss_and_grads(model, batch)
    original = trl_utils._use_triton
    with score_answer_positions_only():
        assert trl_utils._use_triton(torch.device("cpu")) is True
        answers_only = loss_and_grads(model, batch)
    assert trl_utils._use_triton is original  # put back after training
    assert answers_only[0] == pytest.approx(every_position[0], rel=1e-5)
    assert every_position[1].keys() == answers_only[1].keys() and every_position[1]
    for name, grad in every_position[1].items():
        assert torch.allclose(grad, answers_only[1][name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize(
    ("configured", "max_length", "device", "expected"),
    [
        (None, 512, "cpu", "eager"),  # short CPU training: eager measured faster
        (None, 4096, "cpu", None),  # long examples: keep sdpa (eager's length x length matrices)
        (None, 512, "cuda", None),  # GPUs: the model's own default
        ("sdpa", 512, "cpu", "sdpa"),  # asked for explicitly
    ],
)
def test_attention_kernel_choice(configured, max_length, device, expected):
    cfg = TrainerConfig(attn_implementation=configured, max_length=max_length)
    assert resolve_attn_implementation(cfg, torch.device(device)) == expected


def test_training_rows_are_stored_once_and_their_tokenisation_is_cached(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from slmtier.data import Example
    from slmtier.tasks.classification import Classification
    from slmtier.training import build_sft_dataset, count_too_long

    task = Classification(instruction="Pick one of {labels}.", labels=("billing", "refund"))
    examples = [Example(id=f"r{i}", input="x " * (i * 20), target="billing") for i in range(6)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    in_memory = build_sft_dataset(task, examples)
    first = build_sft_dataset(task, examples, cache_dir=tmp_path)
    assert first.to_list() == in_memory.to_list()
    folder = Path(first.cache_files[0]["filename"]).parent
    assert folder.parent == tmp_path / "sft_datasets"
    limit = 60
    expected = sum(
        len(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)) > limit
        for row in in_memory
    )
    assert 0 < count_too_long(tokenizer, first, limit) == expected < len(examples)
    files = sorted(folder.iterdir())
    again = build_sft_dataset(task, examples, cache_dir=tmp_path)  # the same rows: the same folder, nothing new
    assert count_too_long(tokenizer, again, limit) == expected
    assert sorted(folder.iterdir()) == files
    other = build_sft_dataset(task, examples[:3], cache_dir=tmp_path)
    assert Path(other.cache_files[0]["filename"]).parent != folder
