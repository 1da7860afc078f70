"""`slmtier route ROUTING.yaml [...]`: the router (slmtier.serve.router) in front of every task given."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from slmtier.cli.serve import LOOPBACK, add_server_arguments, read_key
from slmtier.errors import SlmtierError

log = logging.getLogger(__name__)


def add_route_command(commands) -> None:
    route = commands.add_parser(
        "route", help="serve tasks as their routing.yaml decided, behind one OpenAI-compatible endpoint"
    )
    route.add_argument("routing", nargs="+", type=Path, help="routing.yaml files (one per task)")
    add_server_arguments(route, max_batch_size=32, max_wait_ms=0.0)
    route.add_argument("--log-dir", type=Path, help="append one JSON line per request here (docs/router.md)")
    route.add_argument("--log-inputs", action="store_true", help="keep the input text in the log (default: a hash)")
    route.add_argument("--max-input-chars", type=int, default=100_000, help="largest task input accepted")
    route.add_argument("--max-prompt-tokens", type=int,
                       help="largest prompt accepted (default: what leaves an SLM tier room to answer)")  # fmt: skip
    route.add_argument("--llm-timeout-s", type=float, default=20.0, help="per attempt at the LLM endpoint")
    route.add_argument("--llm-max-retries", type=int, default=1, help="retries of a failed LLM request")
    route.add_argument("--request-timeout-s", type=float, default=60.0, help="a request not answered by then: 504")
    route.set_defaults(handler=run_route)


def run_route(args: argparse.Namespace) -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar per request in the router's output
    from slmtier.serve.api import run_server
    from slmtier.serve.request_log import RequestLog
    from slmtier.serve.router import build_router
    from slmtier.serve.routes import load_route

    api_key = read_key(args.api_key_env)
    if args.host not in LOOPBACK and api_key is None:
        log.warning("binding %s without --api-key-env: anyone who can reach this port can use the router", args.host)
    # On the request path a failing LLM is retried briefly: the cascade's local answer is the fallback.
    retry = {"timeout_s": args.llm_timeout_s, "max_retries": args.llm_max_retries, "backoff_initial_s": 0.2,
             "backoff_max_s": 2.0}  # fmt: skip
    routes = {}
    for path in args.routing:
        route = load_route(path, max_prompt_tokens=args.max_prompt_tokens, llm_retry=retry)
        if route.name in routes:
            raise SlmtierError(f"{path}: task {route.name!r} is routed twice; give each task one routing.yaml")
        routes[route.name] = route
        print(f"{route.name}: {route.tier}" + (f" ({route.local_name} first)" if route.tier == "cascade" else ""))
        if route.vllm_command:  # docs/router.md, "In production"
            print(f"  at scale, its SLM on vLLM (then routing.yaml slm.endpoint): {route.vllm_command}")
    app = build_router(
        routes,
        api_key=api_key,
        request_log=RequestLog(args.log_dir, keep_inputs=args.log_inputs),
        max_body_bytes=args.max_body_bytes,
        max_input_chars=args.max_input_chars,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        request_timeout_s=args.request_timeout_s,
        read_timeout_s=args.read_timeout_s,
    )
    print(f"routing {len(routes)} task(s) at http://{args.host}:{args.port}/v1", flush=True)
    run_server(app, host=args.host, port=args.port, read_timeout_s=args.read_timeout_s)
