"""`slmtier serve`: the fine-tuned SLM behind the OpenAI chat-completions API.

Any OpenAI client (or slmtier's own `baseline=openai_compatible`) can call it. Two model names are
served: the run's adapter (default: the recipe name) and the bare base model. Non-streaming and
streaming (server-sent events) answers; `usage` is always filled in.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Literal

import jinja2
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from slmtier.inference import render_prompt
from slmtier.serve.api import ApiError, install_api_basics
from slmtier.serve.engine import BatchingEngine, ChatJob, ChatResult


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False  # each answer token's log-probability (not streamed); top_logprobs are not offered


def build_app(
    engine: BatchingEngine,
    *,
    adapter_name: str,
    base_name: str | None,
    api_key: str | None = None,
    default_max_tokens: int = 256,
    max_tokens_limit: int = 2048,
    max_body_bytes: int = 1_000_000,
    read_timeout_s: float = 10.0,
) -> FastAPI:
    app = FastAPI(title="slmtier serve", docs_url=None, redoc_url=None, openapi_url=None)
    models = {adapter_name: True}  # name -> adapter on? (a fully fine-tuned model has no base to switch to)
    if base_name:
        models[base_name] = False
    created = int(time.time())

    install_api_basics(app, api_key=api_key, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s)

    @app.get("/health")
    async def health():
        stats = engine.stats
        return {"status": "ok", "models": list(models), "requests": stats.requests, "batches": stats.batches}

    @app.get("/v1/models")
    async def list_models():
        data = [{"id": name, "object": "model", "created": created, "owned_by": "slmtier"} for name in models]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        if body.model not in models:
            raise ApiError(
                404, f"model {body.model!r} is not served here; serving {list(models)}", code="model_not_found"
            )
        if body.n != 1:
            raise ApiError(400, "n must be 1")
        max_tokens = body.max_completion_tokens or body.max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            raise ApiError(400, f"max_tokens {max_tokens} exceeds this server's limit {max_tokens_limit}")
        loop = asyncio.get_running_loop()
        try:
            prompt = render_prompt(engine.tokenizer, [_plain(m) for m in body.messages], **engine.chat_template_kwargs)
        except (jinja2.TemplateError, ValueError) as err:  # e.g. a template that insists roles alternate
            raise ApiError(400, f"the model's chat template refused these messages: {err}") from err
        job = ChatJob(
            prompt=prompt,
            adapter=models[body.model],
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            loop=loop,
            future=loop.create_future(),
            logprobs=body.logprobs and not body.stream,
        )
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _stream(engine, job, completion_id, body.model, stops, include_usage), media_type="text/event-stream"
            )
        engine.submit(job)
        try:
            result = _apply_stops(await job.future, stops, engine.count_tokens)
        except Exception as err:
            raise ApiError(500, f"generation failed: {type(err).__name__}: {err}", kind="server_error") from err
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                    "logprobs": _logprobs(result),
                }
            ],
            "usage": _usage(result),
        }

    return app


async def _stream(engine: BatchingEngine, job: ChatJob, completion_id: str, model: str, stops, include_usage: bool):
    """Server-sent events in OpenAI's chunk format: role, text pieces as they decode, finish, [DONE].
    With stop strings, the last few characters are held back until it is clear they do not start one."""
    pieces: asyncio.Queue[str] = asyncio.Queue()
    job.on_text = pieces.put_nowait
    engine.submit(job)
    created = int(time.time())
    usage_field = {"usage": None} if include_usage else {}
    hold = max((len(stop) for stop in stops), default=1) - 1

    def chunk(delta: dict | None, finish: str | None = None, **extra) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
            **usage_field,
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    received, sent = "", 0
    getter: asyncio.Future | None = None
    try:
        while not job.future.done() or not pieces.empty():
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, job.future}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                continue
            received += getter.result()
            if any(stop in received for stop in stops):
                break  # the rest, cut at the stop, goes out below
            safe = len(received) - hold
            if safe > sent:
                yield chunk({"content": received[sent:safe]})
                sent = safe
        result = _apply_stops(await job.future, stops, engine.count_tokens)
    except Exception as err:  # noqa: BLE001 - the 200 header is gone: say it in the stream, then end it
        yield f"data: {json.dumps({'error': {'message': f'generation failed: {err}', 'type': 'server_error'}})}\n\n"
        yield "data: [DONE]\n\n"
        return
    finally:
        if getter is not None and not getter.done():
            getter.cancel()
    if len(result.text) > sent:
        yield chunk({"content": result.text[sent:]})
    yield chunk({}, result.finish_reason)
    if include_usage:
        yield chunk(None, usage=_usage(result))
    yield "data: [DONE]\n\n"


def _logprobs(result: ChatResult) -> dict | None:
    """OpenAI's `logprobs` object: each answer token with its log-probability under greedy decoding."""
    if result.token_logprobs is None:
        return None
    return {"content": [{"token": token, "logprob": value, "bytes": list(token.encode("utf-8")), "top_logprobs": []}
                        for token, value in result.token_logprobs]}  # fmt: skip


def _plain(message: ChatMessage) -> dict:
    """A message as the chat template wants it: text content (text parts joined); developer -> system."""
    content = message.content
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": content or ""}


def _apply_stops(result: ChatResult, stops: list[str], count_tokens) -> ChatResult:
    """The answer cut before the first stop string, its token count redone for what is returned."""
    cut = min((result.text.find(stop) for stop in stops if stop and stop in result.text), default=-1)
    if cut < 0:
        return result
    return ChatResult(result.text[:cut], result.prompt_tokens, count_tokens(result.text[:cut]), "stop")


def _usage(result: ChatResult) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }
