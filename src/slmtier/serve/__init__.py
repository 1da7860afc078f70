"""The SLM tier as an OpenAI-compatible HTTP service (`slmtier serve RUN_DIR`)."""

from slmtier.serve.app import build_app
from slmtier.serve.engine import BatchingEngine

__all__ = ["BatchingEngine", "build_app"]
