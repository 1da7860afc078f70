"""The SLM tier as an OpenAI-compatible HTTP service (`slmtier serve RUN_DIR`), and the router (`slmtier route`).

The package imports nothing itself: `python train.py` needs slmtier.serve.routes (the answer a route gives)
but not the web framework behind it."""
