"""`slmtier route`: every task's routing.yaml served behind one OpenAI-compatible endpoint.

A client asks for the task by name (`model`: routing.yaml `task`) and sends its input (the ticket, the email,
the transcript) as the last user message; the router applies the task's own prompt, parser and confidence,
and answers with the task's answer as the message content (the label, the JSON object, the summary). What
answered, with what confidence and whether it was escalated come back in the response's `slmtier` field and
in `x-slmtier-*` headers (docs/router.md).

Per task, as routing.yaml decided: `encoder` / `slm` (the local tier, dynamically batched), `cascade` (the local
tier first; below `escalate_below` the same request goes to the LLM endpoint), `llm` (the endpoint alone).
Failure policy: the LLM failing in a cascade returns the local answer, marked; the local tier failing
escalates; a request gets an error only when no tier could answer it (503, never a 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from slmtier.candidate import Answer, answer_async
from slmtier.data import Example
from slmtier.serve.api import ApiError, install_api_basics
from slmtier.serve.request_log import RequestLog
from slmtier.serve.routes import Batcher, PromptTooLong, TaskRoute
from slmtier.tasks import plain_answer

SHADOW_DRAIN_S = 10.0
# A cascade stops waiting for the LLM this long before the request's deadline, to answer locally in time.
DEADLINE_MARGIN_S = 0.05


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: StrictStr | list[TextPart] | None = None


class RouteRequest(BaseModel):
    """OpenAI's chat-completions request; the sampling fields are accepted and ignored: every tier answers as
    it was benchmarked (greedy)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = 1
    stream: bool = False


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: StrictStr | list[StrictStr]


def build_router(
    routes: dict[str, TaskRoute],
    *,
    api_key: str | None = None,
    request_log: RequestLog | None = None,
    max_body_bytes: int = 1_000_000,
    max_input_chars: int = 100_000,
    max_batch_size: int = 32,
    max_wait_ms: float = 0.0,
    llm_concurrency: int = 16,
    request_timeout_s: float = 60.0,
    read_timeout_s: float = 10.0,
) -> FastAPI:
    request_log = request_log or RequestLog(None)
    shadows: set[asyncio.Future] = set()  # shadow requests in flight (kept referenced until they end)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        for route in routes.values():
            if route.local is not None and hasattr(route.local, "open_session"):  # the SLM on its own server,
                route.local_session = route.local.open_session(max_connections=llm_concurrency)  # which batches
            elif route.local is not None:
                route.batcher = Batcher(route.local, route.task, max_batch=max_batch_size, max_wait_ms=max_wait_ms)
                route.batcher.start()
            if route.llm is not None:  # one HTTP client and cache connection for all its requests
                route.llm_session = route.llm.open_session(max_connections=llm_concurrency)
        yield
        if shadows:  # shadow answers in flight are logged before the router stops, if they come in time
            await asyncio.wait(shadows, timeout=SHADOW_DRAIN_S)
        for route in routes.values():
            if route.batcher is not None:
                await route.batcher.stop()
            for session in (route.local_session, route.llm_session):
                if session is not None:
                    await session.aclose()
        request_log.close()

    app = FastAPI(title="slmtier route", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    install_api_basics(app, api_key=api_key, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s)
    created = int(time.time())

    @app.get("/health")
    async def health():
        return {"status": "ok", "tasks": {name: route.tier for name, route in routes.items()}}

    @app.get("/v1/models")
    async def list_models():
        data = [{"id": name, "object": "model", "created": created, "owned_by": "slmtier"} for name in routes]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: RouteRequest, request: Request):
        route = routes.get(body.model)
        if route is None:
            raise ApiError(
                404, f"model {body.model!r} is not routed here; tasks: {list(routes)}", code="model_not_found"
            )
        if body.n != 1 or body.stream:
            raise ApiError(400, "the router answers n=1, without streaming: one answer per request")
        request_id = request_id_of(request)
        text = find_input(body.messages, route, max_input_chars)
        began = time.perf_counter()
        example = Example(id=request_id, input=text, target=None)
        await check_budget(route, example)
        deadline = time.monotonic() + request_timeout_s - DEADLINE_MARGIN_S
        served = await until_answered(request, route_request(route, example, deadline), request_timeout_s)
        served["latency_ms"]["total"] = round((time.perf_counter() - began) * 1000, 3)
        answered_locally = served["tier"] is not None and served["tier"] == route.local_name
        served["shadow"] = answered_locally and route.shadowed(request_id)
        request_log.record(log_record(route, request_id, served), input_text=text)
        if "client_gone" in served["errors"]:  # nobody reads this; nginx's code for it
            return JSONResponse({"error": {"message": served["errors"]["client_gone"]}}, status_code=499)
        if "deadline" in served["errors"]:
            raise ApiError(504, served["errors"]["deadline"], kind="server_error")
        if served["tier"] is None:
            raise ApiError(503, f"no tier could answer this request: {served['errors']}", kind="server_error")
        if served["shadow"]:  # after the answer is on its way; its failure changes nothing the client sees
            shadows.add(asyncio.ensure_future(shadow_request(route, example, served, request_log)))
            shadows.difference_update({task for task in shadows if task.done()})
        return JSONResponse(response_body(request_id, route.name, served), headers=response_headers(request_id, served))

    @app.post("/classify")
    async def classify(body: ClassifyRequest, request: Request):
        """vLLM's and SGLang's classification API: each input routed as a chat request would be (a cascade
        escalates the unsure ones); `probs` is the encoder's calibrated distribution over the labels when it
        answered, else one-hot on the label given (the SLM and the LLM tier name a label, no distribution)."""
        route = routes.get(body.model)
        if route is None or route.task.kind != "classification":
            classifiers = [name for name, item in routes.items() if item.task.kind == "classification"]
            raise ApiError(404, f"model {body.model!r} is no classification task routed here; {classifiers}")
        inputs = [body.input] if isinstance(body.input, str) else body.input
        if not inputs or sum(map(len, inputs)) > max_input_chars or not all(text.strip() for text in inputs):
            raise ApiError(400, f"input: one or more non-empty texts, {max_input_chars:,} characters in all at most")
        request_id = request_id_of(request)
        examples = [Example(id=f"{request_id}-{i}", input=text, target=None) for i, text in enumerate(inputs)]
        for example in examples:
            await check_budget(route, example)
        deadline = time.monotonic() + request_timeout_s - DEADLINE_MARGIN_S
        every = asyncio.gather(*(route_request(route, example, deadline) for example in examples))
        results = await until_answered(request, every, request_timeout_s)
        if isinstance(results, dict):  # the deadline passed, or the client left: nothing was answered
            raise ApiError(504, next(iter(results["errors"].values())), kind="server_error")
        labels = list(route.task.labels)
        data = []
        for index, (example, served) in enumerate(zip(examples, results, strict=True)):
            request_log.record(log_record(route, example.id, served), input_text=example.input)
            if served["tier"] is None or served["answer"] not in labels:
                why = served["errors"] or "the answer names none of the labels"
                raise ApiError(503, f"input {index}: no tier could classify it: {why}", kind="server_error")
            probs = served["label_probs"] or [float(label == served["answer"]) for label in labels]
            data.append({"index": index, "label": served["answer"], "probs": probs, "num_classes": len(labels),
                         "slmtier": {key: served[key] for key in ("tier", "escalated", "confidence")}})  # fmt: skip
        tokens = sum((served["tokens"] or {}).get("input") or 0 for served in results)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
        created = int(time.time())
        return {"id": f"classify-{request_id}", "object": "list", "created": created, "model": route.name,
                "data": data, "usage": usage}  # fmt: skip

    return app


async def check_budget(route: TaskRoute, example: Example) -> None:
    """A prompt over the task's token budget is a 400 before it is queued (counted off the event loop)."""
    if route.budget is None:
        return
    try:
        await asyncio.get_running_loop().run_in_executor(None, route.budget.check, example)
    except PromptTooLong as err:
        raise ApiError(400, str(err), code="context_length_exceeded") from err


async def until_answered(request: Request, work, timeout_s: float):
    """`work`'s result, unless the deadline passes or the client hangs up first: then the work is cancelled
    (its requests leave the batch queue; a batch already running ends within the task's answer budget) and
    what happened comes back as an unanswered request."""
    work = asyncio.ensure_future(asyncio.wait_for(work, timeout_s))
    gone = asyncio.ensure_future(hung_up(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not work.done():
        work.cancel()
        return unanswered("client_gone", "the client closed the connection before its answer; its work was dropped")
    try:
        return work.result()
    except asyncio.TimeoutError:
        return unanswered("deadline", f"no answer within this router's {timeout_s:g} s")


async def hung_up(request: Request) -> None:
    """Returns when the client closes its connection (the body was read: all that can come is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def unanswered(reason: str, message: str) -> dict:
    return {"tier": None, "escalated": False, "confidence": None, "answer": None, "latency_ms": {},
            "errors": {reason: message}}  # fmt: skip


async def route_request(route: TaskRoute, example: Example, deadline: float | None = None) -> dict:
    """The task's answer to one example as routing.yaml says, with what answered it and how long each hop took.
    `deadline` (time.monotonic()): when a local answer is in hand, the LLM hop waits for the endpoint only
    until then, and the local answer goes back, marked (a slow LLM is a failing LLM)."""
    local: Answer | None = None
    errors: dict[str, str] = {}
    latency: dict[str, float] = {}
    if route.local is not None:
        began = time.perf_counter()
        try:
            if route.batcher is not None:
                local = await route.batcher.submit(example)
            else:
                local = (await answer_async(route.local, route.task, [example], route.local_session))[0]
                if local.generation.error:
                    raise RuntimeError(local.generation.error)
        except Exception as err:  # noqa: BLE001 - the local tier failing escalates the request
            errors[route.local_name] = f"{type(err).__name__}: {err}"
        latency[route.local_name] = round((time.perf_counter() - began) * 1000, 3)
    unsure = local is not None and route.tier == "cascade" and _below(local.confidence, route.escalate_below)
    chosen, tier, escalated = local, (route.local_name if local is not None else None), False
    if route.llm is not None and (local is None or unsure):
        began = time.perf_counter()
        asked = answer_async(route.llm, route.task, [example], route.llm_session)
        wait_s = None if local is None or deadline is None else max(0.0, deadline - time.monotonic())
        try:
            reply = (await asyncio.wait_for(asked, wait_s))[0]
        except asyncio.TimeoutError:  # the LLM request is cancelled; the client is not kept waiting
            reply = None
            errors["llm"] = f"no answer within the request's deadline ({wait_s:.3g} s left when it was asked)"
        except Exception as err:  # noqa: BLE001 - e.g. the endpoint refusing the key: a failed hop, never a 500
            reply = None
            errors["llm"] = f"{type(err).__name__}: {err}"
        latency["llm"] = round((time.perf_counter() - began) * 1000, 3)
        if reply is not None and reply.generation.error:
            errors["llm"] = reply.generation.error  # a cascade keeps its local answer, marked
        elif reply is not None:
            chosen, tier, escalated = reply, "llm", route.tier != "llm"
    return {
        "tier": tier,
        "escalated": escalated,
        "confidence": chosen.confidence if chosen is not None else None,
        "local_confidence": local.confidence if local is not None else None,
        "answer": plain_answer(chosen.parsed) if chosen is not None else None,
        # The local tier's own answer, escalated or not: the monitor's output drift, and with the LLM's answer
        # to an escalated request a free reference pair for re-fitting the threshold.
        "local_answer": plain_answer(local.parsed) if local is not None else None,
        "parsed": chosen is not None and chosen.parsed is not None,
        "raw_output": chosen.raw_output if chosen is not None else None,
        "label_probs": list(chosen.generation.label_probs)
        if chosen is not None and chosen.generation.label_probs
        else None,
        "tokens": {"input": chosen.generation.input_tokens, "output": chosen.generation.output_tokens}
        if chosen is not None
        else None,
        "cost_usd": chosen.generation.cost_usd if chosen is not None and tier == "llm" else None,
        # The LLM that answered, as the run names it (`slmtier import-logs` keeps it with the answers it trains on).
        "model": route.llm.model if tier == "llm" else None,
        "errors": errors,
        "latency_ms": latency,
    }


async def shadow_request(route: TaskRoute, example: Example, served: dict, request_log: RequestLog) -> None:
    """The LLM's answer to a request the local tier answered, for the log only: both answers side by side,
    and whether they agree (the monitor scores that agreement with the task's metric)."""
    began = time.perf_counter()
    try:
        reply = (await answer_async(route.llm, route.task, [example], route.llm_session))[0]
        error = reply.generation.error
    except Exception as err:  # noqa: BLE001 - a shadow failure is counted in the log, never raised
        reply, error = None, f"{type(err).__name__}: {err}"
    cost = reply.generation.cost_usd if reply is not None and not error else None
    route.shadow_spent_usd += cost or 0.0
    llm_answer = plain_answer(reply.parsed) if reply is not None and not error else None
    record = {
        "time": time.time(),
        "request_id": example.id,
        "task": route.name,
        "routing": route.routing_id,
        "kind": "shadow",
        "tier": "llm",
        "answer": llm_answer,
        "local_answer": served["answer"],
        "agrees": None if error else llm_answer == served["answer"],
        "model": route.llm.model,
        "cost_usd": cost,
        "error": error,
        "latency_ms": {"llm": round((time.perf_counter() - began) * 1000, 3)},
    }
    request_log.record(record, input_text=example.input)


def log_record(route: TaskRoute, request_id: str, served: dict) -> dict:
    """A request's log record: when, which task under which routing.yaml, and everything about its answer but
    the label distribution (which /classify returns, and which would repeat every label in every record)."""
    record = {"time": time.time(), "request_id": request_id, "task": route.name, "routing": route.routing_id}
    return record | {key: value for key, value in served.items() if key != "label_probs"}


def request_id_of(request: Request) -> str:
    """The client's `x-request-id` when it sends one (printable, at most 128 characters), else a new id."""
    given = request.headers.get("x-request-id", "")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return f"chatcmpl-{uuid.uuid4().hex}"


def find_input(messages: list[ChatMessage], route: TaskRoute, max_chars: int) -> str:
    """The task input: the last user message's text (text parts joined), or the part of it the routing's
    input pattern names. A request without it is a 400 that says what was looked for, never a guess."""
    users = [message for message in messages if message.role == "user"]
    if not users:
        raise ApiError(400, "no user message: the task input is read from the last user message")
    content = users[-1].content
    text = content if isinstance(content, str) else "".join(part.text for part in content or [])
    if route.input_pattern is not None:
        found = route.input_pattern.search(text)
        if found is None or not found.group("input"):
            raise ApiError(400, f"the task input was not found in the last user message: routing.yaml's input "
                                f"pattern {route.input_pattern.pattern!r} does not match it")  # fmt: skip
        text = found.group("input")
    if not text.strip():
        raise ApiError(400, "the last user message is empty: it should hold the task input")
    if len(text) > max_chars:
        raise ApiError(400, f"the task input is {len(text):,} characters, over this router's {max_chars:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ApiError(400, "the task input is not valid Unicode (it holds a lone surrogate)") from err
    return text


def response_body(request_id: str, model: str, served: dict) -> dict[str, Any]:
    value = served["answer"]
    content = value if isinstance(value, str) else (served["raw_output"] if value is None else json.dumps(value))
    extension = {key: served[key] for key in ("tier", "escalated", "confidence", "answer", "errors", "latency_ms")}
    tokens_in, tokens_out = (served["tokens"]["input"] or 0), (served["tokens"]["output"] or 0)
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
        "slmtier": extension,
    }


def response_headers(request_id: str, served: dict) -> dict[str, str]:
    confidence = served["confidence"]
    return {
        "x-request-id": request_id,
        "x-slmtier-tier": served["tier"],
        "x-slmtier-escalated": "true" if served["escalated"] else "false",
        "x-slmtier-confidence": "" if confidence is None else f"{confidence:.6f}",
    }


def _below(confidence: float | None, threshold: float | None) -> bool:
    return confidence is None or (threshold is not None and confidence < threshold)
