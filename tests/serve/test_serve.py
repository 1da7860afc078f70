"""`slmtier serve` on loopback with a tiny fine-tuned model, and the benchmark's LLM tier pointed at it:
real HTTP end to end, the response cache on a rerun, and a planted API key that must not leak."""

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers.files import REPO, read_jsonl, write_jsonl
from helpers.processes import run_train_cli, wait_until_healthy
from helpers.tiny import tiny_overrides

PLANTED_KEY = "sk-slmtier-planted-7f3a9c1e5b"  # recognisable: must appear in no file a run writes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """`slmtier serve RUN_DIR` (the session's tiny run) in a subprocess on a free loopback port, with a bearer key."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = {**os.environ, "SLMTIER_TEST_KEY": PLANTED_KEY}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "slmtier", "serve", str(tiny_run.run_dir), "--port", str(port),
             "--api-key-env", "SLMTIER_TEST_KEY", "--max-wait-ms", "50", "--max-body-bytes", "20000"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        if (why := wait_until_healthy(f"{url}/health", process)) is not None:
            pytest.fail(f"serve is not up ({why}): {log_path.read_text()}")
        yield {"url": url, "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


AUTH = {"Authorization": f"Bearer {PLANTED_KEY}"}


def chat(url, **body):
    payload = {"model": "ticket_classifier", "messages": [{"role": "user", "content": "My invoice is wrong"}], **body}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, headers=AUTH, timeout=60)


def test_serve_speaks_the_openai_api(server):
    url = server["url"]
    models = httpx.get(f"{url}/v1/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == ["ticket_classifier", "tiny"]

    answer = chat(url, max_tokens=6).json()
    choice = answer["choices"][0]
    assert answer["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    assert 1 <= answer["usage"]["completion_tokens"] <= 6 and answer["usage"]["prompt_tokens"] > 5

    # Streaming: the pieces add up to the same greedy answer, then finish_reason, usage, [DONE].
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", headers=AUTH, timeout=60,
        json={"model": "ticket_classifier", "messages": [{"role": "user", "content": "My invoice is wrong"}],
              "max_tokens": 6, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:  # fmt: skip
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == choice["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == choice["finish_reason"]
    assert chunks[-1]["usage"] == answer["usage"]

    # The base model under its own name: the adapter switched off.
    assert chat(url, model="tiny", max_tokens=6).status_code == 200
    assert "invalid or missing API key" in httpx.post(f"{url}/v1/chat/completions", json={}).text
    missing = chat(url, model="gpt-4o")
    assert missing.status_code == 404 and "not served here" in missing.json()["error"]["message"]
    assert chat(url, messages=[]).status_code == 400
    unknown = httpx.get(f"{url}/v1/nothing-here", headers=AUTH)
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert "vllm serve" in server["log"].read_text() and "--enable-lora --lora-modules ticket_classifier=" in (
        server["log"].read_text()
    )


def own_address() -> str | None:
    """This machine's address on its outward interface (no packet is sent), None if it has only loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_bad_requests_get_4xx_and_the_server_lives_on(server):
    url, endpoint = server["url"], f"{server['url']}/v1/chat/completions"
    malformed = httpx.post(endpoint, content=b'{"model": "ticket_classifier", "messages": [', headers=AUTH)
    assert malformed.status_code == 400 and "error" in malformed.json()
    wrong_types = [
        {"model": "ticket_classifier", "messages": "hello"},
        {"model": "ticket_classifier", "messages": [{"role": "user", "content": 5}]},
        {"model": "ticket_classifier", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3},
        {"model": "ticket_classifier", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
        {"messages": [{"role": "user", "content": "x"}]},
        [1, 2, 3],
    ]
    for body in wrong_types:
        response = httpx.post(endpoint, json=body, headers=AUTH)
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error", body
    too_many = chat(url, max_tokens=100_000)
    assert too_many.status_code == 400 and "exceeds this server's limit" in too_many.json()["error"]["message"]
    huge = chat(url, messages=[{"role": "user", "content": "x" * 50_000}])
    assert huge.status_code == 413 and "exceeds this server's limit" in huge.json()["error"]["message"]

    def endless():
        yield b'{"model": "ticket_classifier", "messages": ['
        yield b"[" * 1000

    assert httpx.post(endpoint, content=endless(), headers=AUTH).status_code == 411  # no declared length
    assert httpx.get(f"{url}/health").status_code == 200 and chat(url, max_tokens=2).status_code == 200
    address = own_address()
    if address:  # bound to loopback only: the machine's own outward address does not answer
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{url.rsplit(':', 1)[1]}/health", timeout=2)


def stream_text(url, **body) -> tuple[str, list[dict]]:
    payload = {"model": "ticket_classifier", "messages": [{"role": "user", "content": "My invoice is wrong"}],
               "stream": True, **body}  # fmt: skip
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers=AUTH, timeout=60, json=payload) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]), chunks


def test_stop_strings_cut_streamed_and_plain_answers_alike(server):
    url = server["url"]
    full = chat(url, max_tokens=8).json()["choices"][0]["message"]["content"]
    if len(full) < 3:
        pytest.skip(f"the tiny model answered too little to cut: {full!r}")
    stop = full[1:3]
    expected = full[: full.find(stop)]
    plain = chat(url, max_tokens=8, stop=[stop]).json()
    assert plain["choices"][0]["message"]["content"] == expected and plain["choices"][0]["finish_reason"] == "stop"
    streamed, chunks = stream_text(url, max_tokens=8, stop=stop)
    assert streamed == expected  # the stop string's first characters were held back, never sent
    assert len({c["created"] for c in chunks}) == 1


def test_concurrent_requests_share_batches(server):
    url = server["url"]
    before = httpx.get(f"{url}/health").json()

    async def burst():
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            bodies = [
                {
                    "model": "ticket_classifier",
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": f"ticket {i}"}],
                }
                for i in range(8)
            ]
            plain = [client.post(f"{url}/v1/chat/completions", json=b) for b in bodies]

            async def streamed(body):  # a streaming request in the same batch as the plain ones
                async with client.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}) as r:
                    lines = [line async for line in r.aiter_lines() if line.startswith("data: {")]
                chunks = [json.loads(line.removeprefix("data: ")) for line in lines]
                return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])

            return await asyncio.gather(*plain, streamed(bodies[0]))

    *responses, streamed_text = asyncio.run(burst())
    after = httpx.get(f"{url}/health").json()
    assert all(r.status_code == 200 for r in responses)
    assert streamed_text == responses[0].json()["choices"][0]["message"]["content"]
    assert after["requests"] - before["requests"] == 9
    assert after["batches"] - before["batches"] < 8  # some requests were answered together


def test_benchmark_against_the_served_model_and_rerun_from_cache(server, tiny_model_dir, tiny_run, tmp_path):
    url = server["url"]
    cache_path = tmp_path / "llm_cache.sqlite"
    env = {"SLMTIER_TEST_KEY": PLANTED_KEY}

    def benchmark(run_dir: Path):
        result = run_train_cli(
            *tiny_overrides(tiny_model_dir, tiny_run.data, run_dir),
            "baseline=openai_compatible",
            f"baseline.endpoint.base_url={url}/v1",
            "baseline.endpoint.model=ticket_classifier",
            "baseline.endpoint.api_key_env=SLMTIER_TEST_KEY",
            "baseline.endpoint.max_tokens=4",
            "baseline.endpoint.price_input_per_1m=2.5",
            "baseline.endpoint.price_output_per_1m=10",
            f"baseline.endpoint.cache_path={cache_path}",
            "baseline.few_shot_k=2",
            env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((run_dir / "metrics.json").read_text())

    before = httpx.get(f"{url}/health").json()["requests"]
    metrics = benchmark(tmp_path / "first")
    served = httpx.get(f"{url}/health").json()["requests"] - before
    llm = metrics["candidates"]["llm"]
    rows = read_jsonl(tmp_path / "first" / "predictions" / "llm.jsonl")

    assert (
        served == 12 + 8  # the test split, and the validation split the cascade is fitted on
        and len(rows) == 12
        and {r["id"] for r in rows} == {r["id"] for r in read_jsonl(tiny_run.data["test"])}
    )
    assert llm["requests"] == {
        "answered": 12, "failed": 0, "failure_rate": 0.0, "failure_reasons": {}, "from_cache": 0, "http_attempts": 12,
    }  # fmt: skip
    assert llm["source"]["cache"]["misses"] == 12 and llm["source"]["endpoint_model"] == "ticket_classifier"
    assert llm["tokens_per_request"]["estimated_rows"] == 0  # usage came from the server
    expected_cost = sum(r["input_tokens"] * 2.5 + r["output_tokens"] * 10 for r in rows) / 1e6
    assert llm["cost"]["total_usd"] == pytest.approx(expected_cost, rel=1e-4)
    assert llm["source"]["spent_usd"] == pytest.approx(expected_cost, rel=1e-4)
    assert all(r["latency_ms"] > 0 and r["error"] is None for r in rows)
    assert "llm" in (tmp_path / "first" / "report.md").read_text()

    # The rerun asks the server nothing: every answer comes from the cache, with the same metrics.
    before = httpx.get(f"{url}/health").json()["requests"]
    again = benchmark(tmp_path / "second")
    assert httpx.get(f"{url}/health").json()["requests"] == before
    assert again["candidates"]["llm"]["requests"]["from_cache"] == 12
    assert again["candidates"]["llm"]["requests"]["http_attempts"] == 0
    assert again["candidates"]["llm"]["source"]["spent_usd"] == 0
    assert again["candidates"]["llm"]["quality"] == llm["quality"]
    assert again["candidates"]["llm"]["cost"]["total_usd"] == pytest.approx(expected_cost, rel=1e-4)

    # The key was in the environment of both runs and of the server; no file anywhere may hold it.
    written = [p for p in [*tmp_path.rglob("*"), server["log"]] if p.is_file()]
    assert cache_path in written and any(p.name == "config.yaml" for p in written)
    leaks = [p for p in written if PLANTED_KEY.encode() in p.read_bytes()]
    assert leaks == []


def test_a_wrong_key_or_dead_endpoint_fails_before_training(server, tiny_model_dir, tiny_run, tmp_path):
    for base_url, words in [
        (f"{server['url']}/v1", "rejected"),
        (f"http://127.0.0.1:{free_port()}/v1", "cannot reach"),
    ]:
        run_dir = tmp_path / words.replace(" ", "_")
        result = run_train_cli(
            *tiny_overrides(tiny_model_dir, tiny_run.data, run_dir),
            "baseline=openai_compatible",
            f"baseline.endpoint.base_url={base_url}",
            "baseline.endpoint.api_key_env=SLMTIER_TEST_KEY",
            env={"SLMTIER_TEST_KEY": "sk-wrong"},
        )
        assert result.returncode == 2 and words in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and not (run_dir / "adapter").exists()


def test_logged_llm_answers_as_the_baseline(tiny_model_dir, tiny_run, tmp_path):
    test_rows = read_jsonl(tiny_run.data["test"])
    logged = [
        {"id": row["id"], "output": row["label"], "model": "gpt-4o-2024-08-06",
         "usage": {"prompt_tokens": 200, "completion_tokens": 2}, "latency_ms": 900}
        for row in test_rows[:10]
    ] + [{"id": "not-in-test", "output": "billing"}]  # fmt: skip
    path = write_jsonl(tmp_path / "llm_log.jsonl", logged)
    result = run_train_cli(
        *tiny_overrides(tiny_model_dir, tiny_run.data, tmp_path / "run"),
        "baseline=predictions",
        f"baseline.predictions.path={path}",
        "decision.max_llm_failure_rate=0.2",  # 2 of 12 unanswered: over the default 5% there is no verdict
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    llm = metrics["candidates"]["llm"]
    answered = metrics["decision"]["checks"][0]
    assert answered["rule"] == "answered" and answered["passed"] and "2 of 12 LLM answers" in answered["detail"]
    # The log has no validation answers: no cascade fitted to a hollow target.
    assert metrics["tiers"]["slm"]["cascade"] is None
    assert llm["n"] == 12 and llm["quality"]["value"] == pytest.approx(10 / 12)  # 2 missing ids count as failed
    assert llm["requests"]["failed"] == 2 and llm["source"]["missing_ids"]["count"] == 2
    assert llm["source"]["missing_ids"]["first"] == [row["id"] for row in test_rows[10:]]
    assert llm["source"]["unmatched_ids"] == {"count": 1, "first": ["not-in-test"]}
    assert llm["cost"]["priced_rows"] == 10  # gpt-4o-2024-08-06 priced as gpt-4o from the shipped table
    assert llm["cost"]["per_1k_requests_usd"] == pytest.approx(1000 * (200 * 2.5 + 2 * 10) / 1e6)
    assert llm["latency_ms"]["p50"] == 900


def test_missing_predictions_path_fails_at_start(tmp_path):
    result = run_train_cli("recipe=ticket_classifier", "baseline=predictions", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "baseline.predictions.path is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_unset_key_fails_before_training(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    command = [sys.executable, "train.py", "recipe=ticket_classifier", "baseline=openai_compatible"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr and "is not set" in result.stderr
    assert not (tmp_path / "adapter").exists()


def test_the_vllm_command_names_the_weights_that_were_measured(tiny_model_dir, tmp_path):
    """The adapter goes on the base it was trained and benchmarked on: for a local folder that folder, for an
    embedded model its dequantised copy (never the hub checkpoint of the same name, whose weights differ)."""
    from slmtier.config import compose_config, to_run_config
    from slmtier.serve.vllm import build_vllm_command

    cfg = to_run_config(compose_config(["recipe=ticket_classifier", f"model.source={tiny_model_dir}"]))
    command = build_vllm_command(cfg, tmp_path / "run", "tickets")
    assert command.startswith(f"vllm serve {tiny_model_dir} --enable-lora --lora-modules tickets=")
    assert command.endswith(f"{(tmp_path / 'run' / 'adapter').resolve()}")
    embedded = to_run_config(compose_config(["recipe=ticket_classifier", f"cache_dir={tmp_path / 'cache'}"]))
    with pytest.MonkeyPatch.context() as patch:  # where the embedded model's dequantised folder would be
        patch.setattr("slmtier.serve.vllm.resolve_model_path", lambda model, cache: f"{cache}/smollm2-135m-instruct")
        command = build_vllm_command(embedded, tmp_path / "run", "tickets")
    assert f"vllm serve {tmp_path / 'cache'}/smollm2-135m-instruct " in command and "HuggingFaceTB" not in command
