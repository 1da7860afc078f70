"""The SLM tier as an OpenAI-compatible HTTP service (`slmtier serve RUN_DIR`)."""

from slmtier.serve.app import build_app
from slmtier.serve.engine import BatchingEngine, load_run_model

__all__ = ["BatchingEngine", "build_app", "load_run_model"]
