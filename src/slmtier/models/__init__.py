"""Base models: find them (embedded, hub, local folder), load them with their tokenizer, attach LoRA."""

from slmtier.models.loading import load_model, load_tokenizer, resolve_bf16, resolve_generate_bf16, resolve_model_path

__all__ = ["load_model", "load_tokenizer", "resolve_bf16", "resolve_generate_bf16", "resolve_model_path"]
