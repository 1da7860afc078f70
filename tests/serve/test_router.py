"""`slmtier route` on loopback, called with the official `openai` client as an application would: the ticket
text alone as the user message. A tiny run is benchmarked against an LLM endpoint on loopback (the fault
server), and its routing.yaml is served as the SLM tier, as a cascade and as the LLM tier.

What is served is what was measured: every test ticket gets the benchmark's parsed answer and confidence; the
cascade escalates exactly the tickets below its threshold and answers them as the benchmarked LLM did. The
failure policy (LLM down: the local answer, marked; nothing can answer: 503, never a 500), the request log
(every request once, whole), and malformed requests (400 with a reason) are checked too."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from helpers.fault_server import FaultServer
from helpers.files import read_jsonl
from helpers.processes import wait_until_healthy
from helpers.servers import Router, benchmark_tiny_run, routing_as
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.inference import Generation
from slmtier.report.routing import routing_id
from slmtier.run_dir import RunDir
from slmtier.serve.request_log import RequestLog, read_request_log
from slmtier.serve.router import build_router
from slmtier.serve.routes import Batcher, PromptTooLong, load_route, read_routing, sample_point

KEY = "sk-router-test-key"


@pytest.fixture(scope="module")
def llm_endpoint():
    state = {"fault": "ok"}
    with FaultServer(lambda text, attempt: state["fault"]) as server:
        yield server, state


@pytest.fixture(scope="module")
def benchmarked_run(tiny_model_dir, llm_endpoint, tmp_path_factory) -> Path:
    return benchmark_tiny_run(tiny_model_dir, llm_endpoint[0], tmp_path_factory.mktemp("router"))


@pytest.fixture(scope="module")
def router(benchmarked_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("routing")
    rows = RunDir(benchmarked_run).read_predictions("slm")
    threshold = statistics.median(row["confidence"] for row in rows)
    paths = {
            "tickets": routing_as(benchmarked_run, folder, "tickets", "slm"),
            "tickets-cascade": routing_as(benchmarked_run, folder, "tickets-cascade", "cascade",
                                          escalate_below=threshold, expected_escalation_rate=0.5),
            "tickets-always-llm": routing_as(benchmarked_run, folder, "tickets-always-llm", "cascade",
                                             escalate_below=2.0, expected_escalation_rate=1.0),
            "tickets-llm": routing_as(benchmarked_run, folder, "tickets-llm", "llm"),
            "tickets-shadow": routing_as(benchmarked_run, folder, "tickets-shadow", "slm", shadow_rate=0.5),
    }  # fmt: skip
    routes = {name: load_route(path) for name, path in paths.items()}
    log_dir = folder / "log"
    app = build_router(routes, api_key=KEY, request_log=RequestLog(log_dir), max_wait_ms=20)
    with Router(app) as base_url:
        yield {"url": base_url, "log": log_dir, "threshold": threshold, "run": benchmarked_run, "routings": paths}


def ask(client: openai.OpenAI, model: str, text: str):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
    completion = raw.parse()
    return completion, completion.model_extra["slmtier"], raw.headers


def test_every_test_ticket_gets_the_benchmarks_answer(router):
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    run = RunDir(router["run"])
    test = {row["id"]: row for row in read_jsonl(Path(run.read_config().data.test))}
    for row in run.read_predictions("slm"):
        completion, served, headers = ask(client, "tickets", test[row["id"]]["text"])
        assert served["tier"] == "slm" and not served["escalated"] and headers["x-slmtier-tier"] == "slm"
        assert served["answer"] == row["parsed"] and completion.choices[0].message.content == row["parsed"]
        assert served["confidence"] == pytest.approx(row["confidence"], abs=1e-5)
        assert float(headers["x-slmtier-confidence"]) == pytest.approx(row["confidence"], abs=1e-5)


def test_the_cascade_escalates_below_its_threshold_and_answers_as_the_benchmarked_llm(router):
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    run = RunDir(router["run"])
    metrics = run.read_metrics()
    llm_rows = {row["id"]: row for row in run.read_predictions(metrics.llm)}
    test = {row["id"]: row for row in read_jsonl(Path(run.read_config().data.test))}
    escalated = 0
    for row in run.read_predictions("slm"):
        _, served, headers = ask(client, "tickets-cascade", test[row["id"]]["text"])
        should = row["confidence"] < router["threshold"]
        assert served["escalated"] is should and headers["x-slmtier-escalated"] == str(should).lower()
        expected = llm_rows[row["id"]]["parsed"] if should else row["parsed"]
        assert served["answer"] == expected and served["tier"] == ("llm" if should else "slm")
        escalated += should
    assert 0 < escalated < len(test)
    # Each record keeps the local tier's own answer, escalated or not (the monitor re-fits the threshold on it).
    records = [r for r in read_request_log(router["log"]) if r["task"] == "tickets-cascade"]
    local = {row["parsed"] for row in run.read_predictions("slm")}
    assert records and all(r["local_answer"] in local for r in records)
    assert sum(r["escalated"] for r in records) >= escalated
    # An answer the LLM gave names the LLM (`slmtier import-logs` keeps it with the answers it trains on).
    llm_model = metrics.candidates[metrics.llm]["model"]
    assert {r["model"] for r in records if r["tier"] == "llm"} == {llm_model}
    assert {r["model"] for r in records if r["tier"] == "slm"} == {None}


def test_failure_policy_never_a_500(router, llm_endpoint):
    _, state = llm_endpoint
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    state["fault"] = "500"
    try:
        # A ticket no run has seen (the response cache cannot answer it): the LLM fails, the local answer stands.
        _, served, headers = ask(client, "tickets-always-llm", "My parcel never arrived and nobody answers.")
        assert served["tier"] == "slm" and not served["escalated"] and "HTTP 500" in served["errors"]["llm"]
        with pytest.raises(openai.InternalServerError) as failed:  # no local tier behind the LLM: 503
            ask(client, "tickets-llm", "Please close my account today.")
        assert failed.value.status_code == 503 and "no tier could answer" in str(failed.value)
        state["fault"] = "401"  # the endpoint refusing the key raises in the client: still the local answer
        _, served, _ = ask(client, "tickets-always-llm", "Another parcel that never arrived.")
        assert served["tier"] == "slm" and "EndpointRefused" in served["errors"]["llm"]
    finally:
        state["fault"] = "ok"


def test_bad_requests_get_a_400_that_says_why(router):
    url = f"{router['url']}/chat/completions"
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    cases = [
        ({"model": "tickets", "messages": [{"role": "system", "content": "hi"}]}, "no user message"),
        ({"model": "tickets", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "text"),
        ({"model": "tickets", "messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"model": "tickets", "messages": [{"role": "user", "content": "x"}], "stream": True}, "streaming"),
    ]
    for body, words in cases:
        response = httpx.post(url, json=body, headers=auth)
        assert response.status_code == 400 and words in response.json()["error"]["message"], response.text
    lone = b'{"model": "tickets", "messages": [{"role": "user", "content": "\\ud800"}]}'
    response = httpx.post(url, content=lone, headers=auth)
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"]
    assert httpx.post(url, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
                      headers=auth).status_code == 404  # fmt: skip
    assert httpx.post(url, json=cases[0][0]).status_code == 401  # no key
    assert httpx.get(router["url"].removesuffix("/v1") + "/openapi.json").status_code in (401, 404)


def test_every_request_is_logged_once_and_whole(router):
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    before = {record["request_id"] for record in read_request_log(router["log"])}
    completion, served, _ = ask(client, "tickets", "I was charged twice for my order.")
    records = [record for record in read_request_log(router["log"]) if record["request_id"] not in before]
    assert [record["request_id"] for record in records] == [completion.id]
    record = records[0]
    assert record["task"] == "tickets" and record["tier"] == "slm" and record["answer"] == served["answer"]
    assert len(record["input_sha256"]) == 64 and "input" not in record  # the text only with --log-inputs
    assert record["input_chars"] == len("I was charged twice for my order.")
    assert record["local_answer"] == record["answer"]
    assert record["routing"] == routing_id(read_routing(router["routings"]["tickets"]))
    assert set(record["latency_ms"]) == {"slm", "total"}
    for path in router["log"].glob("requests-*.jsonl"):
        assert path.read_text().endswith("\n") and all(json.loads(line) for line in path.read_text().splitlines())


def test_shadow_sampling_takes_its_exact_share_and_never_changes_an_answer(router, llm_endpoint):
    _, state = llm_endpoint
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    texts = [f"Ticket {i}: my invoice shows a charge I do not recognise." for i in range(16)]
    ids = [f"shadow-test-{i}" for i in range(len(texts))]
    expected = {request_id for request_id in ids if sample_point(request_id) < 0.5}
    assert 0 < len(expected) < len(ids)
    plain = [ask(client, "tickets", text)[1]["answer"] for text in texts]
    state["fault"] = "500"  # shadow failures are counted in the log; the clients see nothing of them
    try:
        for text, request_id, answer in zip(texts, ids, plain, strict=True):
            raw = client.chat.completions.with_raw_response.create(
                model="tickets-shadow", messages=[{"role": "user", "content": text}],
                extra_headers={"x-request-id": request_id},
            )  # fmt: skip
            served = raw.parse().model_extra["slmtier"]
            assert raw.headers["x-request-id"] == request_id and served["answer"] == answer and served["tier"] == "slm"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shadows = [
                r for r in read_request_log(router["log"]) if r.get("kind") == "shadow" and r["request_id"] in ids
            ]
            if len(shadows) >= len(expected):
                break
            time.sleep(0.1)
    finally:
        state["fault"] = "ok"
    requests = [r for r in read_request_log(router["log"]) if r["request_id"] in ids and r.get("kind") != "shadow"]
    assert {r["request_id"] for r in requests if r["shadow"]} == expected
    assert {r["request_id"] for r in shadows} == expected and len(shadows) == len(expected)
    assert all(r["error"] and "HTTP 500" in r["error"] and r["agrees"] is None for r in shadows)
    assert all(r["model"] for r in shadows)


def test_classify_speaks_vllms_classification_api(router):
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    texts = ["I was charged twice for my order.", "The app crashes when I open it.", "Where is my parcel?"]
    response = httpx.post(router["url"].removesuffix("/v1") + "/classify", json={"model": "tickets", "input": texts},
                          headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    labels = RunDir(router["run"]).read_config().task.labels
    assert body["object"] == "list" and [item["index"] for item in body["data"]] == [0, 1, 2]
    for text, item in zip(texts, body["data"], strict=True):
        assert item["label"] == ask(client, "tickets", text)[1]["answer"] and item["num_classes"] == len(labels)
        assert item["probs"][labels.index(item["label"])] == 1.0 and sum(item["probs"]) == 1.0  # the SLM: one-hot
    missing = httpx.post(router["url"].removesuffix("/v1") + "/classify", json={"model": "tickets", "input": []},
                         headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
    assert missing.status_code == 400


def test_a_request_past_its_deadline_gets_a_504(router, llm_endpoint, tmp_path):
    _, state = llm_endpoint
    routes = {"tickets-llm": load_route(routing_as(router["run"], tmp_path, "tickets-llm", "llm"))}
    state["fault"] = "slow"  # the fault server answers after a second
    try:
        with Router(build_router(routes, request_timeout_s=0.3, request_log=RequestLog(tmp_path / "log"))) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
            with pytest.raises(openai.APIStatusError) as late:
                ask(client, "tickets-llm", "A ticket nobody has asked about before.")
            assert late.value.status_code == 504 and "0.3 s" in str(late.value)
        [record] = read_request_log(tmp_path / "log")  # the request that got no answer is logged too
        assert record["tier"] is None and "0.3 s" in record["errors"]["deadline"]
    finally:
        state["fault"] = "ok"


def test_a_slow_llm_in_a_cascade_returns_the_local_answer_in_time(router, llm_endpoint, tmp_path):
    _, state = llm_endpoint
    routing = routing_as(router["run"], tmp_path, "tickets-always-llm", "cascade", escalate_below=2.0,
                         expected_escalation_rate=1.0)  # fmt: skip
    routes = {"tickets-always-llm": load_route(routing, llm_retry={"max_retries": 0})}
    state["fault"] = "slow"  # the LLM answers after a second; the request's deadline is 0.5 s
    try:
        with Router(build_router(routes, request_timeout_s=0.5)) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
            _, served, _ = ask(client, "tickets-always-llm", "A ticket that the LLM answers too slowly.")
        assert served["tier"] == "slm" and not served["escalated"] and "deadline" in served["errors"]["llm"]
        assert served["latency_ms"]["total"] < 1000
    finally:
        state["fault"] = "ok"


def test_the_log_survives_kill_9_during_a_burst_and_sigterm_ends_the_router(router, tmp_path):
    """`slmtier route` as a process: SIGKILLed while 24 requests are in flight, every record it wrote parses and
    names a request it was sent; a second router stops on SIGTERM within its shutdown bound."""
    routing = routing_as(router["run"], tmp_path, "tickets", "slm")
    log_dir = tmp_path / "log"

    def start() -> tuple[subprocess.Popen, str]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "slmtier",
            "route",
            str(routing),
            "--port",
            str(port),
            "--log-dir",
            str(log_dir),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        if (why := wait_until_healthy(f"{url}/health", process)) is None:
            return process, url
        process.kill()
        raise AssertionError(f"{why}: {process.stdout.read()}")

    process, url = start()
    sent = [f"burst-{i}" for i in range(24)]

    def one(request_id: str) -> None:
        body = {"model": "tickets", "messages": [{"role": "user", "content": f"Ticket {request_id}: refund me."}]}
        try:
            httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-request-id": request_id}, timeout=30)
        except httpx.TransportError:
            pass  # the router was killed under it

    threads = [threading.Thread(target=one, args=(request_id,)) for request_id in sent]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(log_dir.glob("*.jsonl"))) == 0:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=60)
    lines = [line for path in log_dir.glob("requests-*.jsonl") for line in path.read_text().split("\n") if line]
    records = [json.loads(line) for line in lines]  # every line whole
    assert records and {record["request_id"] for record in records} <= set(sent)
    assert len({record["request_id"] for record in records}) == len(records)  # none twice

    process, url = start()
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: the conventional exit status of a SIGTERM.
    assert process.wait(timeout=30) in (0, -signal.SIGTERM) and time.monotonic() - began < 15
    printed = process.stdout.read()
    assert "tickets: slm" in printed and "vllm serve" in printed and "--enable-lora" in printed, printed


def test_a_prompt_over_the_slms_context_is_a_400_before_it_is_queued(router):
    """The tiny SLM's context is 4,096 tokens: an input that cannot fit with its answer is refused at once,
    saying why, instead of holding the model (the probe's 10,000-message request held it for 9 minutes)."""
    client = openai.OpenAI(base_url=router["url"], api_key=KEY, max_retries=0)
    before = len(read_request_log(router["log"]))
    began = time.monotonic()
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, "tickets", "Refund my order please. " * 2_000)
    assert "over this task's limit" in str(refused.value) and "context of 4,096 tokens" in str(refused.value)
    assert refused.value.code == "context_length_exceeded" and time.monotonic() - began < 5
    assert len(read_request_log(router["log"])) == before  # refused before any tier saw it
    assert ask(client, "tickets", "Refund my order please.")[1]["tier"] == "slm"


def test_a_configured_prompt_cap_applies_to_every_tier(router, tmp_path):
    for tier in ("slm", "llm"):
        route = load_route(routing_as(router["run"], tmp_path, f"capped-{tier}", tier), max_prompt_tokens=40)
        assert route.budget.limit == 40 and "--max-prompt-tokens" in route.budget.why
        short, long = Example("a", "Refund please.", None), Example("b", "Refund my order please. " * 20, None)
        if tier == "llm":
            route.budget.check(short)
        with pytest.raises(PromptTooLong, match="over this task's limit of 40"):
            route.budget.check(long)


def test_slow_clients_cannot_hold_connections(router, tmp_path):
    """Slow loris: connections that send nothing, or trickle a request head a byte at a time, are closed once
    the read deadline passes; a body that does not arrive in time gets a 408. Normal requests go on."""
    routes = {"tickets-llm": load_route(routing_as(router["run"], tmp_path, "tickets-llm", "llm"))}
    with Router(build_router(routes, read_timeout_s=1.0), read_timeout_s=1.0) as base_url:
        port = int(base_url.split(":")[-1].split("/")[0])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        loris = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        began = time.monotonic()
        closed: set[int] = set()
        while time.monotonic() - began < 6 and len(closed) < len(loris):
            for index, connection in enumerate(loris):
                if index not in closed:
                    try:
                        connection.sendall(head[:1] if time.monotonic() - began > 0.1 else head)
                    except OSError:
                        closed.add(index)
            time.sleep(0.2)
        assert len(closed) == len(loris), f"{len(loris) - len(closed)} trickling connections still open after 6 s"
        for connection in idle:
            connection.settimeout(5)
            assert connection.recv(1024) == b""  # closed by the router, within the deadline
        with socket.create_connection(("127.0.0.1", port)) as partial:
            partial.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 200\r\n\r\n{\"model\": ")  # fmt: skip
            partial.settimeout(5)
            assert partial.recv(4096).startswith(b"HTTP/1.1 408")
        assert httpx.get(base_url.removesuffix("/v1") + "/health").status_code == 200
        for connection in idle + loris:
            connection.close()


def test_a_client_that_hangs_up_has_its_work_dropped_and_logged(router, llm_endpoint, tmp_path):
    _, state = llm_endpoint
    routes = {"tickets-llm": load_route(routing_as(router["run"], tmp_path, "tickets-llm", "llm"))}
    state["fault"] = "slow"  # the LLM answers after a second; the client gives up after 0.3 s
    try:
        with Router(build_router(routes, request_log=RequestLog(tmp_path / "log"))) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=0.3)
            with pytest.raises(openai.APITimeoutError):
                ask(client, "tickets-llm", "A ticket whose sender will not wait.")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not list((tmp_path / "log").glob("*.jsonl")):
                time.sleep(0.05)
        [record] = read_request_log(tmp_path / "log")
        assert record["tier"] is None and "closed the connection" in record["errors"]["client_gone"]
        assert record["latency_ms"]["total"] < 1000  # logged when the client left, not when the LLM answered
    finally:
        state["fault"] = "ok"


def test_the_batcher_drops_queued_work_whose_client_is_gone():
    """Pure batching logic, with a stand-in model that answers when told: a request cancelled while queued
    behind a running batch never reaches the model."""

    class Gate:
        name = "gate"

        def __init__(self):
            self.release, self.seen = threading.Event(), []

        def predict(self, task, examples):
            self.release.wait(10)
            self.seen.append([example.id for example in examples])
            return [Generation("billing", 1.0, 1, 1, token_logprobs=(0.0,)) for _ in examples]

    class Task:
        kind = "classification"

        @staticmethod
        def parse(text):
            return text

    async def scenario(gate: Gate) -> None:
        batcher = Batcher(gate, Task(), max_batch=4, max_wait_ms=1)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(Example("first", "a", None)))
        await asyncio.sleep(0.2)  # the first batch is running (held at the gate)
        queued = [asyncio.ensure_future(batcher.submit(Example(f"queued-{i}", "b", None))) for i in range(3)]
        await asyncio.sleep(0.05)
        queued[1].cancel()  # its client hung up while it waited
        gate.release.set()
        assert (await first).parsed == "billing"
        assert [reply.parsed for reply in await asyncio.gather(queued[0], queued[2])] == ["billing", "billing"]
        await batcher.stop()

    gate = Gate()
    asyncio.run(scenario(gate))
    assert gate.seen == [["first"], ["queued-0", "queued-2"]]


@pytest.fixture(scope="module")
def generating_run(tiny_model_dir, llm_endpoint, tmp_path_factory) -> Path:
    """A tiny run whose SLM generates its answers (no label scoring): what a chat endpoint can reproduce."""
    folder = tmp_path_factory.mktemp("generating")
    return benchmark_tiny_run(tiny_model_dir, llm_endpoint[0], folder, "inference.label_scoring=false")


def test_the_slm_tier_on_a_remote_server_answers_as_benchmarked(generating_run, tmp_path):
    """The SLM served by another process (`slmtier serve`, standing in for vLLM with the adapter), asked with
    `logprobs`: every test ticket gets the benchmark's answer and confidence."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "slmtier", "serve", str(generating_run), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_until_healthy(f"http://127.0.0.1:{port}/health", server) is None
        routing = routing_as(generating_run, tmp_path, "tickets-remote", "slm")
        spec = yaml.safe_load(routing.read_text())
        spec["slm"]["endpoint"] = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": None}
        spec["slm"]["served_name"] = "ticket_classifier"  # the name `slmtier serve` gives the adapter
        routing.write_text(yaml.safe_dump(spec))
        route = load_route(routing)
        assert route.local.endpoint.logprobs and route.local.few_shot == []
        run = RunDir(generating_run)
        test = {row["id"]: row for row in read_jsonl(Path(run.read_config().data.test))}
        with Router(build_router({"tickets-remote": route})) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
            for row in run.read_predictions("slm"):
                _, served, _ = ask(client, "tickets-remote", test[row["id"]]["text"])
                assert served["tier"] == "slm" and served["answer"] == row["parsed"], (served, row["raw_output"])
                assert served["confidence"] == pytest.approx(row["confidence"], abs=1e-4)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_label_scoring_slm_cannot_be_served_remotely(router, tmp_path):
    routing = routing_as(router["run"], tmp_path, "tickets-remote", "slm")
    spec = yaml.safe_load(routing.read_text())
    spec["slm"]["endpoint"] = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}
    routing.write_text(yaml.safe_dump(spec))
    with pytest.raises(SlmtierError, match="label_scoring=false"):
        load_route(routing)


def test_a_remote_slm_that_is_down_escalates_to_the_llm(generating_run, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    routing = routing_as(generating_run, tmp_path, "tickets-remote", "cascade", escalate_below=0.5,
                         expected_escalation_rate=0.5)  # fmt: skip
    spec = yaml.safe_load(routing.read_text())
    spec["slm"]["endpoint"] = {"base_url": f"http://127.0.0.1:{dead}/v1", "api_key_env": None}
    routing.write_text(yaml.safe_dump(spec))
    route = load_route(routing, llm_retry={"max_retries": 0})
    with Router(build_router({"tickets-remote": route})) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        _, served, _ = ask(client, "tickets-remote", "My parcel is late again.")
    assert served["tier"] == "llm" and "connection" in served["errors"]["slm"].lower(), served
