"""The LLM-tier client against a real loopback server that injects faults; the cache; prices; log files."""

import asyncio
import http.server
import json
import sqlite3
import threading
import time

import pytest

from helpers.fault_server import FaultServer
from helpers.files import write_jsonl
from slmtier.baselines.cache import ResponseCache, build_cache_key
from slmtier.baselines.chat_protocol import RequestFailed, RetryableError, parse_chat_response, parse_retry_after
from slmtier.baselines.openai_compatible import ChatClient, ChatSession, EndpointRefused
from slmtier.baselines.predictions_file import load_logged_answers
from slmtier.baselines.pricing import find_price, resolve_endpoint_price
from slmtier.config import EndpointConfig, ModelPrice, PredictionsFileConfig, PricingConfig
from slmtier.errors import DataError, SlmtierError


def endpoint_for(server: FaultServer, **changes) -> EndpointConfig:
    settings = {
        "base_url": server.base_url,
        "model": "fault-model",
        "api_key_env": None,
        "timeout_s": 2.0,
        "max_concurrency": 4,
        "max_retries": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return EndpointConfig(**{**settings, **changes})


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "system", "content": "Echo."}, {"role": "user", "content": f"row {i}"}] for i in range(n)]


def ask(endpoint, cache_path, convs):
    cache = ResponseCache(cache_path)
    client = ChatClient(endpoint, cache, api_key=None)
    try:
        return client.complete_all(convs), client, cache
    finally:
        cache.close()


# Row i's first attempt fails in the way FAULTS names (i % 6); "row 0" and "row 6" always fail with 500.
def plan(text: str, attempt: int) -> str:
    i = int(text.split()[-1])
    if i in (0, 6):
        return "500"
    return ["ok", "429", "500", "slow", "malformed", "drop"][i % 6] if attempt == 1 else "ok"


def test_every_fault_is_retried_and_true_failures_are_recorded(tmp_path):
    with FaultServer(plan, slow_s=4.0) as server:
        outcomes, client, _ = ask(endpoint_for(server), tmp_path / "cache.sqlite", conversations(24))

    assert len(outcomes) == 24  # no row lost
    for i, outcome in enumerate(outcomes):
        if i in (0, 6):
            assert outcome.reply is None and "HTTP 500" in outcome.error and outcome.attempts == 4
        else:
            assert outcome.error is None and outcome.reply.content == f"echo: row {i}"
            assert outcome.reply.input_tokens == 12 and outcome.reply.output_tokens == 3
            assert outcome.attempts == (1 if i % 6 == 0 else 2), (i, outcome)
    assert set(server.faults) == {"ok", "429", "500", "slow", "malformed", "drop"}
    assert client.requests_sent == sum(server.faults.values())


def test_retry_after_is_honoured(tmp_path):
    with FaultServer(lambda text, attempt: "429" if attempt == 1 else "ok", retry_after="0.6") as server:
        outcomes, _, _ = ask(endpoint_for(server), tmp_path / "cache.sqlite", conversations(1))
        times = [t for _, _, t in server.seen]
    assert outcomes[0].reply.content == "echo: row 0"
    assert times[1] - times[0] >= 0.6  # the backoff alone would have waited at most 0.05 s


def test_a_rerun_pays_for_nothing_already_answered(tmp_path):
    cache_path = tmp_path / "cache.sqlite"
    with FaultServer(plan, slow_s=4.0) as server:
        first, _, cache = ask(endpoint_for(server), cache_path, conversations(12))
        assert cache.misses == 12 and cache.hits == 0
        requests_before = sum(server.faults.values())
        second, client, cache = ask(endpoint_for(server), cache_path, conversations(12))
        new_texts = [text for text, _, _ in server.seen[requests_before:]]

    assert cache.hits == 10 and cache.misses == 2
    assert set(new_texts) == {"row 0", "row 6"}  # only the failures were asked again
    assert all(o.cached and o.attempts == 0 for i, o in enumerate(second) if i not in (0, 6))
    assert [o.reply.content for o in second if o.reply] == [o.reply.content for o in first if o.reply]


def test_the_same_question_twice_in_one_run_is_asked_once(tmp_path):
    with FaultServer(lambda text, attempt: "ok") as server:
        outcomes, client, cache = ask(endpoint_for(server), tmp_path / "cache.sqlite", conversations(1) * 5)
    assert len(outcomes) == 5 and server.faults["ok"] == 1 and client.requests_sent == 1
    assert [(o.attempts, o.cached) for o in outcomes] == [(1, False)] + [(0, True)] * 4  # paid once
    assert cache.misses == 1


def test_called_from_a_running_event_loop(tmp_path):
    """In a notebook an event loop is already running: the client moves to a thread of its own."""

    async def inside_a_loop():
        return ask(endpoint_for(server), tmp_path / "cache.sqlite", conversations(3))[0]

    with FaultServer(lambda text, attempt: "ok") as server:
        outcomes = asyncio.run(inside_a_loop())
    assert [o.reply.content for o in outcomes] == ["echo: row 0", "echo: row 1", "echo: row 2"]


def test_a_key_echoed_by_the_server_is_masked_in_errors(tmp_path):
    secret = "sk-echoed-4b1d9e"
    faults = {0: "echo_auth_400", 1: "echo_auth_500"}
    with FaultServer(lambda text, attempt: faults[int(text.split()[-1])]) as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        outcomes = ChatClient(endpoint_for(server, max_retries=1), cache, api_key=secret).complete_all(conversations(2))
    assert [o.reply for o in outcomes] == [None, None]
    assert "HTTP 400" in outcomes[0].error and "HTTP 500" in outcomes[1].error
    for outcome in outcomes:
        assert "Bearer ***" in outcome.error and secret not in outcome.error and "sk-" not in outcome.error


def test_a_changed_parameter_is_a_different_cache_entry(tmp_path):
    with FaultServer(lambda text, attempt: "ok") as server:
        ask(endpoint_for(server), tmp_path / "cache.sqlite", conversations(2))
        ask(endpoint_for(server, max_tokens=7), tmp_path / "cache.sqlite", conversations(2))
    assert server.faults["ok"] == 4


def test_a_refused_key_stops_the_run(tmp_path):
    """401 would fail every row the same way: stop with what to fix instead of recording N failures."""

    class Unauthorised(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unauthorised)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        endpoint = EndpointConfig(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key_env=None)
        with pytest.raises(EndpointRefused, match="rejected the API key"):
            ask(endpoint, tmp_path / "cache2.sqlite", conversations(3))
    finally:
        httpd.shutdown()


def test_missing_key_variable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SLMTIER_TEST_NO_SUCH_KEY", raising=False)
    from slmtier.baselines.openai_compatible import read_api_key

    with pytest.raises(SlmtierError, match="SLMTIER_TEST_NO_SUCH_KEY .* is not set"):
        read_api_key(EndpointConfig(api_key_env="SLMTIER_TEST_NO_SUCH_KEY"))


def test_response_parsing():
    body = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}], "model": "m"}).encode()
    reply = parse_chat_response(body, 12.0)
    assert reply.content == "hi" and reply.input_tokens is None and reply.model == "m"
    with pytest.raises(RetryableError, match="malformed"):  # cut short in transit: ask again
        parse_chat_response(b'{"choices": [{"message": {"content": "cut', 1.0)
    for bad in [b'{"choices": []}', b'{"choices": [{"message": {"content": 3}}]}', b'{"error": {"message": "x"}}']:
        with pytest.raises(RequestFailed, match="unexpected response shape"):  # billed: asking again pays again
            parse_chat_response(bad, 1.0)
    parts = json.dumps(
        {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    )
    assert parse_chat_response(parts.encode(), 1.0).content == "ab"
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))) <= 6


def test_a_cache_entry_that_does_not_decode_is_asked_again(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    key = build_cache_key("http://x/v1/", "m", [{"role": "user", "content": "a"}], {"max_tokens": 5})
    assert key == build_cache_key("http://x/v1", "m", [{"role": "user", "content": "a"}], {"max_tokens": 5})
    cache.put(key, base_url="http://x/v1", model="m", response={"content": "ok"})
    assert cache.get(key) == {"content": "ok"}
    cache.close()
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute('UPDATE responses SET response = \'{"content": "tru\'')
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.get(key) is None and cache.misses == 1


def test_prices_match_snapshots_and_not_other_models():
    table = PricingConfig(
        as_of="2026-06",
        models={"gpt-4o": ModelPrice(2.5, 10.0), "gpt-4o-mini": ModelPrice(0.15, 0.6), "o3": ModelPrice(2.0, 8.0)},
    )
    assert find_price("gpt-4o-2024-08-06", table).entry == "gpt-4o"
    assert find_price("gpt-4o-mini-2024-07-18", table).entry == "gpt-4o-mini"
    assert find_price("openai/GPT-4o", table).entry == "gpt-4o"
    assert find_price("o3-mini", table) is None  # a different model, not a snapshot: no guessed price
    assert find_price("gpt-4o", table).cost(1_000_000, 100_000) == pytest.approx(3.5)
    override = EndpointConfig(model="my-azure-deployment", price_input_per_1m=1.0, price_output_per_1m=2.0)
    assert resolve_endpoint_price(override, table).entry == "override"
    assert resolve_endpoint_price(EndpointConfig(model="my-deployment", price_model="gpt-4o"), table).entry == "gpt-4o"


def test_shipped_price_table_loads():
    from omegaconf import OmegaConf

    from slmtier.config import CONFIG_DIR

    table = OmegaConf.to_object(
        OmegaConf.merge(
            OmegaConf.structured(PricingConfig), OmegaConf.load(CONFIG_DIR / "pricing" / "list_prices.yaml")
        )
    )
    assert table.as_of and table.source
    assert find_price("gpt-4o", table).input_per_1m > 0
    assert find_price("claude-sonnet-4-5-20250929", table).entry == "claude-sonnet-4-5"


def test_logged_answers_file_is_checked_row_by_row(tmp_path):
    path = tmp_path / "llm.jsonl"
    path.write_text(
        '{"id": "a", "output": "billing"}\n'
        "not json\n"
        '{"id": "a", "output": "x"}\n'
        '{"output": "x"}\n'
        '{"id": "b", "output": 5}\n'
        '{"id": "c"}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as err:
        load_logged_answers(PredictionsFileConfig(path=str(path)))
    message = str(err.value)
    for line, words in [(2, "malformed JSON"), (3, "already appeared on line 1"), (4, "missing"), (5, "raw text")]:
        assert f"llm.jsonl:{line}: " in message and words in message
    assert "llm.jsonl:6: no 'output' field" in message

    write_jsonl(path, [{"id": 1, "output": None}, {"id": "2", "output": "x", "usage": {"prompt_tokens": 9}}])
    _, answers = load_logged_answers(PredictionsFileConfig(path=str(path)))
    assert answers["1"].output is None and answers["2"].input_tokens == 9 and answers["2"].output_tokens is None


def test_endpoint_candidate_estimates_missing_usage_and_prices_it(tmp_path):
    from slmtier.baselines.candidates import EndpointCandidate
    from slmtier.baselines.pricing import Price
    from slmtier.config import compose_config, to_run_config
    from slmtier.data import Example
    from slmtier.tasks import build_task

    task = build_task(to_run_config(compose_config(["recipe=ticket_classifier"])).task)
    examples = [Example(id=f"t{i}", input=f"ticket number {i}", target="billing") for i in range(3)]
    with FaultServer(lambda text, attempt: "ok", usage=False) as server:
        candidate = EndpointCandidate(
            "llm", "fault-model", endpoint_for(server), tmp_path / "cache.sqlite",
            price=Price(2.0, 8.0, "test", "today"), count_tokens=lambda text: len(text.split()),
        )  # fmt: skip
        generations = candidate.predict(task, examples)
    assert [g.raw_output for g in generations] == [f"echo: ticket number {i}" for i in range(3)]
    assert all(g.usage_estimated and g.output_tokens == 4 and g.input_tokens > 20 for g in generations)
    assert generations[0].cost_usd == pytest.approx((generations[0].input_tokens * 2 + 4 * 8) / 1e6)
    assert candidate.info["cache"] == {"path": str(tmp_path / "cache.sqlite"), "hits": 0, "misses": 3}


def _fill_cache(path, worker: int) -> None:
    cache = ResponseCache(path)
    for i in range(150):
        cache.put(f"{worker}-{i}", base_url="http://x", model="m", response={"content": f"{worker}/{i}"})
    cache.close()


def test_the_cache_takes_writes_from_parallel_processes(tmp_path):
    """A Hydra sweep runs jobs side by side against one cache file: no write may fail or be lost."""
    import multiprocessing

    path = tmp_path / "shared.sqlite"
    ResponseCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_fill_cache, args=(path, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 450 and cache.get("2-149") == {"content": "2/149"}


def test_soak_1200_requests_with_a_fifth_faulty(tmp_path):
    """1,200 rows against the fault server, ~20% of attempts failing in every way it knows (429 with
    Retry-After, 500, timeouts, dropped connections, malformed bodies), some rows failing for good. Every row
    ends answered with its own answer or recorded as failed with its reason; none missing or duplicated; the
    run stops by itself within its bounds; a rerun pays for no answered row."""
    import random

    faults = ["429", "500", "slow", "malformed", "drop"]
    rng = random.Random(0)
    doomed = set(rng.sample(range(1200), 12))  # these fail every attempt
    fates: dict[tuple[str, int], str] = {}

    def soak_plan(text: str, attempt: int) -> str:
        row = int(text.split()[-1])
        if row in doomed:
            return "500"
        key = (text, attempt)
        if key not in fates:  # the first decision for this attempt sticks (a retry is a new attempt)
            fates[key] = rng.choice(faults) if rng.random() < 0.2 else "ok"
        return fates[key]

    n, cache_path = 1200, tmp_path / "cache.sqlite"
    with FaultServer(soak_plan, slow_s=1.0, retry_after="0.01") as server:
        endpoint = endpoint_for(server, max_concurrency=32, timeout_s=0.5, max_retries=4)
        began = time.monotonic()
        outcomes, client, cache = ask(endpoint, cache_path, conversations(n))
        elapsed = time.monotonic() - began
        first_requests = len(server.seen)
        rerun, _, rerun_cache = ask(endpoint, cache_path, conversations(n))
        asked_again = {text for text, _, _ in server.seen[first_requests:]}

    assert len(outcomes) == n and elapsed < 120  # bounded: it stops by itself
    answered = [i for i, o in enumerate(outcomes) if o.reply is not None]
    failed = [i for i, o in enumerate(outcomes) if o.reply is None]
    assert set(answered) | set(failed) == set(range(n)) and not set(answered) & set(failed)
    for i in answered:
        assert outcomes[i].reply.content == f"echo: row {i}" and outcomes[i].error is None
    assert doomed <= set(failed)
    for i in failed:
        assert outcomes[i].error and outcomes[i].attempts == 5  # the reason, after every allowed attempt
    # A fifth of the attempts were faults of every kind; the client counted exactly what the server saw.
    total = sum(server.faults.values())
    assert 0.15 < (total - server.faults["ok"]) / total < 0.3 and set(faults) <= set(server.faults)
    # Attempts the client counts include a few lost on a dropped keep-alive connection before reaching the server.
    assert n <= first_requests <= client.requests_sent == sum(o.attempts for o in outcomes)
    # The rerun: answered rows come from the cache, only the failed ones are asked again.
    assert rerun_cache.hits == len(answered) and rerun_cache.misses == len(failed)
    assert all(rerun[i].cached and rerun[i].attempts == 0 for i in answered)
    assert asked_again == {f"row {i}" for i in failed}


def test_a_long_lived_session_shares_a_question_in_flight_and_survives_its_asker_leaving(tmp_path):
    """The router's LLM session: two requests with the same question send one HTTP request; when the first
    asker is cancelled (its client hung up), the second still gets its answer, asked anew."""

    async def scenario(server: FaultServer) -> tuple:
        chat = ChatClient(endpoint_for(server), ResponseCache(tmp_path / "cache.sqlite"), api_key=None)
        session = ChatSession.open(chat, max_connections=4)
        messages = [{"role": "user", "content": "Where is my parcel?"}]
        try:
            first = asyncio.ensure_future(session.complete(messages))
            second = asyncio.ensure_future(session.complete(messages))
            await asyncio.sleep(0.3)
            first.cancel()
            answered = await second
            again = await session.complete(messages)  # answered before: from the cache, nothing sent
        finally:
            await session.aclose()
        return first.cancelled(), answered, again

    with FaultServer(lambda text, attempt: "slow", slow_s=1.0) as server:
        cancelled, answered, again = asyncio.run(scenario(server))
        assert cancelled and answered.reply.content == "echo: Where is my parcel?"
        assert again.cached and again.attempts == 0
        assert len(server.seen) == 2  # the cancelled asker's request, then the second asker's own
