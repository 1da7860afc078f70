"""`slmtier serve RUN_DIR`: the run's fine-tuned SLM as an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from slmtier.errors import RunDirError, SlmtierError

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def add_serve_command(commands) -> None:
    serve = commands.add_parser("serve", help="serve a run's fine-tuned SLM over the OpenAI chat-completions API")
    serve.add_argument("run_dir", help="a run directory (runs/<recipe>/<model>/<time>) holding adapter/")
    serve.add_argument("--name", help="model name clients ask for (default: the run's recipe)")
    add_server_arguments(serve, max_batch_size=16)
    serve.add_argument("--max-tokens-limit", type=int, default=2048, help="largest max_tokens a request may ask")
    serve.set_defaults(handler=run_serve)


def add_server_arguments(command, *, max_batch_size: int, max_wait_ms: float = 5.0) -> None:
    """What `slmtier serve` and `slmtier route` share: where they listen, the key, batching, the body limit."""
    command.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    command.add_argument("--port", type=int, default=8000)
    command.add_argument("--api-key-env", help="require `Authorization: Bearer <key>`, the key read from this variable")
    command.add_argument("--max-batch-size", type=int, default=max_batch_size, help="requests answered together")
    command.add_argument("--max-wait-ms", type=float, default=max_wait_ms, help="how long a request waits to batch")
    command.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body accepted")
    command.add_argument(
        "--read-timeout-s", type=float, default=10.0, help="seconds a client has to send a request's head, then body"
    )


def run_serve(args: argparse.Namespace) -> None:
    from slmtier.models import resolve_generate_bf16
    from slmtier.run_dir import RunDir
    from slmtier.serve.api import run_server
    from slmtier.serve.app import build_app
    from slmtier.serve.engine import BatchingEngine
    from slmtier.serve.vllm import build_vllm_command
    from slmtier.tiers.slm import load_run_model, recorded_max_new_tokens

    run_dir = Path(args.run_dir)
    run_cfg = RunDir(run_dir).read_config()
    api_key = read_key(args.api_key_env)
    if args.host not in LOOPBACK and api_key is None:
        log.warning("binding %s without --api-key-env: anyone who can reach this port can use the model", args.host)
    name = args.name or _recipe_name(run_dir)
    full = run_cfg.trainer.finetune == "full"
    if name == run_cfg.model.name and not full:
        raise SlmtierError(f"--name {name!r} is the base model's name, which serves the model without the adapter")
    model, tokenizer = load_run_model(run_dir, run_cfg)
    engine = BatchingEngine(
        model, tokenizer, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
        bf16=resolve_generate_bf16(run_cfg.inference.generate_bf16),
        chat_template_kwargs=run_cfg.model.chat_template_kwargs,
    )  # fmt: skip
    app = build_app(
        engine,
        adapter_name=name,
        base_name=None if full else run_cfg.model.name,
        api_key=api_key,
        default_max_tokens=recorded_max_new_tokens(run_dir, run_cfg),  # the benchmark's budget
        max_tokens_limit=args.max_tokens_limit,
        max_body_bytes=args.max_body_bytes,
        read_timeout_s=args.read_timeout_s,
    )
    url = f"http://{args.host}:{args.port}/v1"
    what = f"{name!r} (fully fine-tuned)" if full else f"{name!r} (adapter) and {run_cfg.model.name!r} (base model)"
    print(f"serving {what} at {url}", flush=True)
    key_env = args.api_key_env or "null"
    print(
        f"  benchmark against it: baseline=openai_compatible baseline.endpoint.base_url={url} "
        f"baseline.endpoint.model={name} baseline.endpoint.api_key_env={key_env}",
        flush=True,
    )
    print(f"  at scale, the same adapter on vLLM: {build_vllm_command(run_cfg, run_dir, name)}", flush=True)
    engine.start()
    try:
        run_server(app, host=args.host, port=args.port, read_timeout_s=args.read_timeout_s)
    finally:
        engine.stop()


def read_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise SlmtierError(f"--api-key-env {variable}: that environment variable is not set")
    return key


def _recipe_name(run_dir: Path) -> str:
    from slmtier.run_dir import RunDir

    try:
        return RunDir(run_dir).read_metrics().recipe
    except (OSError, RunDirError):
        return run_dir.resolve().name
