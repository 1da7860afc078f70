"""`slmtier route` measured: parity with the benchmark, per-request latency, overhead, the live cascade, load.

    python scripts/bench_router.py --classify-run RUN --extract-run RUN --out bench/work/router.json

Each router is a `slmtier route` process on a free loopback port, called over HTTP as an application would
(the input alone as the user message; one keep-alive connection per client thread):
- parity: every test example of each run, through the router as each local tier (encoder, slm), against the
  run's own predictions (parsed answer and confidence), at concurrency 8 (the router batches what arrives
  together, as in production); every difference is listed with both raw outputs;
- numerics: the extraction run's first examples answered in batches and one at a time, in bf16 and in fp32
  (why a served answer can differ from the benchmarked one);
- latency: the encoder tier one request at a time (p50/p95), and at concurrency 8 and 32 (requests/s, p95),
  against the same examples answered offline in batches of 32 in this process (the throughput ceiling) and
  one at a time by calling the tier's answer function directly (the router's overhead is the difference);
- cascade (with `--llm-model FOLDER`): `transformers serve FOLDER` on loopback as the LLM; the classify run's
  trained tiers are benchmarked against it (a copy of the run: nothing is retrained), and its cascade is then
  served live: the escalation rate and accuracy on the test split against the benchmark's expectation;
- load: 2,000 unique requests at concurrency 32 to that cascade with every request escalated, the LLM
  endpoint replaced by the fault server answering 20% of them with faults (500, a dropped connection, a
  malformed body): how many were lost or got a 5xx, whether each is in the request log exactly once, and the
  router's RSS growth after a warm-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fault server the tests use

from helpers.fault_server import FaultServer  # noqa: E402
from helpers.processes import wait_until_healthy  # noqa: E402
from helpers.servers import routing_as  # noqa: E402
from slmtier.benchmark.speed import machine_busy_s  # noqa: E402
from slmtier.benchmark.summary import percentile  # noqa: E402
from slmtier.candidate import answer  # noqa: E402
from slmtier.data import load_splits  # noqa: E402
from slmtier.run_dir import RunDir  # noqa: E402
from slmtier.serve.request_log import read_request_log  # noqa: E402
from slmtier.tasks import build_task, plain_answer  # noqa: E402

LLM_PORT = 18777


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A server as a child process on a free port, up once `health` answers 200; stopped on exit."""

    def __init__(self, command: list[str], health: str, log: Path, port: int, timeout_s: float = 300):
        self.port, self.log = port, log
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)
        why = wait_until_healthy(f"http://127.0.0.1:{port}{health}", self.process, timeout_s)
        if why is not None:
            self.process.kill()
            sys.exit(f"{command[:4]}: {why}\n{log.read_text()[-3000:]}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (user + system, all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_router(routings: list[Path], work: Path, name: str, *extra: str) -> Process:
    port = free_port()
    command = [sys.executable, "-m", "slmtier", "route", *map(str, routings), "--port", str(port),
               "--log-dir", str(work / f"{name}-log"), *extra]  # fmt: skip
    return Process(command, "/health", work / f"{name}.log", port)


def send_all(port: int, model: str, texts: list[str], concurrency: int, ids: list[str] | None = None) -> list[dict]:
    """Every text as one chat request, `concurrency` at a time; each result: status, the slmtier extension,
    the client-side latency in ms (one request's own time, at that concurrency)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    local = threading.local()

    def one(index: int) -> dict:
        client = getattr(local, "client", None) or httpx.Client(timeout=120)
        local.client = client
        headers = {"x-request-id": ids[index]} if ids else {}
        body = {"model": model, "messages": [{"role": "user", "content": texts[index]}]}
        began = time.perf_counter()
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as err:
            return {"status": None, "error": f"{type(err).__name__}: {err}", "ms": None}
        ms = (time.perf_counter() - began) * 1000
        served = response.json().get("slmtier") if response.status_code == 200 else None
        return {"status": response.status_code, "served": served, "ms": ms,
                "error": None if response.status_code == 200 else response.text[:300]}  # fmt: skip

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(len(texts))))


def send_lean(port: int, model: str, texts: list[str], concurrency: int) -> tuple[list[dict], float]:
    """`send_all` for throughput: a bare HTTP/1.1 client on one asyncio loop, `concurrency` keep-alive
    connections. The client shares the router's two cores; httpx in 32 threads spent about as much CPU per
    request as the router did, this one a small fraction (its CPU time per request comes back with the
    results, so the figure says what the load generator took)."""
    import asyncio

    bodies = [
        json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode("utf-8") for text in texts
    ]
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    requests = [head.encode("ascii") + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]
    results: list[dict | None] = [None] * len(texts)
    pending = iter(range(len(texts)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in pending:
                began = time.perf_counter()
                writer.write(requests[index])
                headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                status = int(headers.split(" ", 2)[1])
                length = int(headers.split("content-length:", 1)[1].split("\r\n", 1)[0])
                body = await reader.readexactly(length)
                ms = (time.perf_counter() - began) * 1000
                served = json.loads(body).get("slmtier") if status == 200 else None
                error = None if status == 200 else body[:300].decode("utf-8", "replace")
                results[index] = {"status": status, "served": served, "ms": ms, "error": error}
        finally:
            writer.close()

    async def everything() -> None:
        await asyncio.gather(*(connection() for _ in range(concurrency)))

    cpu = time.process_time()
    asyncio.run(everything())
    return results, (time.process_time() - cpu) * 1000 / len(texts)


def latency_block(results: list[dict], wall_s: float) -> dict:
    times = [r["ms"] for r in results if r["ms"] is not None]
    return {"requests": len(results), "requests_per_s": round(len(results) / wall_s, 2),
            "p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}  # fmt: skip


def test_split(run_dir: Path):
    cfg = RunDir(run_dir).read_config()
    task = build_task(cfg.task)
    return cfg, task, load_splits(cfg.data, task.check_target).test


# ---------------------------------------------------------------- parity


def reparse(task, served_answer):
    """A served answer (a label, a JSON object) back in the task's parsed form, to score it."""
    if served_answer is None:
        return None
    return task.parse(served_answer if isinstance(served_answer, str) else json.dumps(served_answer))


def parity(run_dir: Path, tier: str, work: Path) -> dict:
    _, task, test = test_split(run_dir)
    rows = {row["id"]: row for row in RunDir(run_dir).read_predictions(tier)}
    routing = routing_as(run_dir, work, f"parity-{tier}", tier)
    with start_router([routing], work, f"parity-{run_dir.parent.parent.name}-{tier}") as router:
        results = send_all(router.port, f"parity-{tier}", [example.input for example in test], 8)
    same, differences = 0, []
    for example, result in zip(test, results, strict=True):
        row = rows[example.id]
        served = result["served"] or {}
        expected = plain_answer(row["parsed"])
        if served.get("answer") == expected:
            same += 1
            continue
        differences.append({"id": example.id, "benchmark": expected, "served": served.get("answer"),
                            "benchmark_confidence": row["confidence"], "served_confidence": served.get("confidence"),
                            "benchmark_raw": row["raw_output"], "status": result["status"]})  # fmt: skip
    confidence_gap = [
        abs((result["served"] or {}).get("confidence", 0) - rows[example.id]["confidence"])
        for example, result in zip(test, results, strict=True)
        if result["served"] and rows[example.id]["confidence"] is not None
    ]
    served = [reparse(task, (r["served"] or {}).get("answer")) for r in results]
    served_quality = task.score(served, [e.target for e in test])
    benchmark_quality = task.score([rows[e.id]["parsed"] for e in test], [e.target for e in test])
    return {"recipe": RunDir(run_dir).read_metrics().recipe, "tier": tier, "n": len(test), "identical": same,
            "served_quality": served_quality[task.metric], "benchmark_quality": benchmark_quality[task.metric],
            "identical_share": round(same / len(test), 4), "max_confidence_gap": max(confidence_gap, default=None),
            "differences": differences}  # fmt: skip


def numerics(run_dir: Path, n: int) -> dict:
    """Why a served answer can differ from the benchmarked one: the same examples answered in the benchmark's
    batches and one at a time, under bf16 autocast and in fp32. Batches pad their rows to a common length; the
    matrix shapes change, and with them the rounding, which bf16 magnifies until a near-tie in greedy decoding
    goes the other way."""
    import dataclasses

    from slmtier.tiers import slm

    cfg, task, test = test_split(run_dir)
    examples = test[:n]
    result = {"recipe": RunDir(run_dir).read_metrics().recipe, "n": len(examples)}
    for name, bf16 in (("bf16", True), ("fp32", False)):
        inference = dataclasses.replace(cfg.inference, generate_bf16=bf16)
        candidate = slm.load(run_dir, dataclasses.replace(cfg, inference=inference))
        began = time.perf_counter()
        batched = [reply.parsed for reply in answer(candidate, task, examples)]
        batched_rps = len(examples) / (time.perf_counter() - began)
        single = [answer(candidate, task, [example])[0].parsed for example in examples]
        same = sum(a == b for a, b in zip(batched, single, strict=True))
        result[name] = {"batch_size": candidate.batch_size, "same_batched_and_single": same,
                        "batched_requests_per_s": round(batched_rps, 2)}  # fmt: skip
        del candidate
    return result


# ---------------------------------------------------------------- latency and overhead


def encoder_latency(run_dir: Path, work: Path) -> dict:
    from slmtier.tiers import encoder

    cfg, task, test = test_split(run_dir)
    texts = [example.input for example in test]
    candidate = encoder.load(run_dir, cfg)
    for example in test[:8]:
        answer(candidate, task, [example])  # warm-up
    direct = []
    for example in test:
        began = time.perf_counter()
        answer(candidate, task, [example])
        direct.append((time.perf_counter() - began) * 1000)
    candidate.batch_size = 32
    cpu, began = time.process_time(), time.perf_counter()
    answer(candidate, task, test)
    offline_rps = len(test) / (time.perf_counter() - began)
    offline_cpu_ms = (time.process_time() - cpu) * 1000 / len(test)
    del candidate
    result = {"n": len(test), "direct_one_at_a_time": {"p50_ms": round(percentile(direct, 50), 2),
                                                        "p95_ms": round(percentile(direct, 95), 2)},
              "offline_batched_32_requests_per_s": round(offline_rps, 1),
              "offline_cpu_ms_per_request": round(offline_cpu_ms, 2)}  # fmt: skip
    routing = routing_as(run_dir, work, "latency-encoder", "encoder")
    with start_router([routing], work, "latency-encoder") as router:
        send_lean(router.port, "latency-encoder", texts[:16], 1)  # warm-up
        for concurrency in (1, 8, 32):
            repeat = texts * (1 if concurrency == 1 else 4)
            cpu, busy, began = router.cpu_s(), machine_busy_s(), time.perf_counter()
            results, client_cpu_ms = send_lean(router.port, "latency-encoder", repeat, concurrency)
            wall = time.perf_counter() - began
            block = latency_block(results, wall)
            block["errors"] = sum(result["status"] != 200 for result in results)
            # What the router process spent per request (the model's share included), and the client, on the
            # same two cores.
            block["router_cpu_ms_per_request"] = round((router.cpu_s() - cpu) * 1000 / len(repeat), 2)
            block["client_cpu_ms_per_request"] = round(client_cpu_ms, 3)
            if busy is not None:  # other processes' share of the cores meanwhile: > 0.25 is a contended figure
                others = machine_busy_s() - busy - (router.cpu_s() - cpu) - client_cpu_ms * len(repeat) / 1000
                block["others_cpu_share"] = round(max(0.0, others) / (wall * (os.cpu_count() or 1)), 3)
            if concurrency == 1:
                server = [r["served"]["latency_ms"] for r in results]
                block["router_total_p50_ms"] = round(percentile([s["total"] for s in server], 50), 2)
                block["tier_hop_p50_ms"] = round(percentile([s["encoder"] for s in server], 50), 2)
            result[f"concurrency_{concurrency}"] = block
    result["overhead_p50_ms"] = round(result["concurrency_1"]["p50_ms"] - result["direct_one_at_a_time"]["p50_ms"], 2)
    result["concurrency_32_vs_offline"] = round(result["concurrency_32"]["requests_per_s"] / offline_rps, 3)
    return result


# ---------------------------------------------------------------- live cascade, then load with faults


def benchmark_against(run_dir: Path, cascade_run: Path, llm_url: str, llm_model: str) -> None:
    """The run's trained tiers (copied, not retrained) benchmarked against the LLM endpoint at `llm_url`."""
    if not (cascade_run / "metrics.json").is_file():
        shutil.rmtree(cascade_run, ignore_errors=True)
        cascade_run.mkdir(parents=True)
        for name in ("adapter", "encoder", "training.json"):
            source = run_dir / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, cascade_run / name)
        recipe = RunDir(run_dir).read_metrics().recipe
        command = [sys.executable, "train.py", f"recipe={recipe}", f"hydra.run.dir={cascade_run}",
                   "baseline=openai_compatible", f"baseline.endpoint.base_url={llm_url}",
                   f"baseline.endpoint.model={llm_model}", "baseline.endpoint.api_key_env=null",
                   "baseline.endpoint.max_concurrency=2",
                   # A price for the stand-in, so the cascade is priced and fitted: gpt-4o-mini's list price.
                   "baseline.endpoint.price_input_per_1m=0.15",
                   "baseline.endpoint.price_output_per_1m=0.6"]  # fmt: skip
        done = subprocess.run(command, cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode not in (0, 3):
            sys.exit(f"benchmarking against {llm_url} failed ({done.returncode})")


def cascade_live(cascade_run: Path, work: Path, escalate: float = 0.3) -> dict:
    """The run's cascade served live at the point of its test curve nearest `escalate` (the fitted threshold
    may escalate nothing when the LLM is weak): the threshold is set midway between that point's confidence
    and the one below, so that the printed confidences' rounding cannot move a request across it."""
    metrics = RunDir(cascade_run).read_metrics()
    via = "encoder" if "encoder" in metrics.tiers else "slm"
    curve = metrics.tiers[via].cascade["test_curve"]
    index = min(range(1, len(curve)), key=lambda i: abs(curve[i]["escalation_rate"] - escalate))
    expected = curve[index]
    threshold = (curve[index - 1]["threshold"] + expected["threshold"]) / 2
    _, task, test = test_split(cascade_run)
    routing = routing_as(cascade_run, work, "cascade-live", "cascade", via=via, escalate_below=threshold,
                         expected_escalation_rate=expected["escalation_rate"])  # fmt: skip
    with start_router([routing], work, "cascade-live") as router:
        results = send_all(router.port, "cascade-live", [example.input for example in test], 4)
    served = [r["served"] or {} for r in results]
    escalated = sum(bool(s.get("escalated")) for s in served) / len(test)
    scores = [task.score_example(s.get("answer"), example.target) for s, example in zip(served, test, strict=True)]
    return {"via": via, "llm": metrics.llm, "threshold": threshold, "n": len(test),
            "benchmark_escalation_rate": expected["escalation_rate"], "live_escalation_rate": round(escalated, 4),
            "benchmark_quality": expected["quality"], "live_quality": round(statistics.fmean(scores), 4),
            "llm_quality": metrics.candidates[metrics.llm]["accuracy"] if metrics.llm in metrics.candidates else None,
            "errors": sum(bool(s.get("errors")) for s in served),
            "non_200": sum(r["status"] != 200 for r in results)}  # fmt: skip


def fault_plan(text: str, attempt: int) -> str:
    """20% of the requests fail on every attempt: 500, a dropped connection or a malformed body."""
    bucket = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 20
    return {0: "500", 1: "500", 2: "drop", 3: "malformed"}.get(bucket, "ok")


def load(cascade_run: Path, work: Path, llm_port: int, n: int) -> dict:
    metrics = RunDir(cascade_run).read_metrics()
    via = "encoder" if "encoder" in metrics.tiers else "slm"
    _, _, test = test_split(cascade_run)
    routing = routing_as(cascade_run, work, "load", "cascade", via=via, escalate_below=2.0,
                         expected_escalation_rate=1.0)  # fmt: skip
    stamp = time.strftime("%Y%m%d%H%M%S")  # unique in every run: none answered from the response cache
    texts = [f"{test[i % len(test)].input} (ref {stamp}-{i})" for i in range(n)]
    ids = [f"load-{i}" for i in range(n)]
    shutil.rmtree(work / "load-log", ignore_errors=True)  # this run's records only
    with FaultServer(fault_plan, port=llm_port) as faults, start_router([routing], work, "load") as router:
        send_all(router.port, "load", [f"warm-up {i}: {text}" for i, text in enumerate(texts[:64])], 32)
        rss_before = router.rss_mb()
        samples, sending = [], threading.Event()

        def watch() -> None:  # the router's RSS every second while the load runs: a plateau, or a climb?
            while not sending.wait(1.0):
                samples.append(round(router.rss_mb(), 1))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        began = time.perf_counter()
        results = send_all(router.port, "load", texts, 32, ids)
        wall = time.perf_counter() - began
        sending.set()
        watcher.join()
        rss_after = router.rss_mb()
        injected = {fault: count for fault, count in faults.faults.items() if fault != "ok"}
    log = [r for r in read_request_log(work / "load-log") if r["request_id"] in set(ids)]
    counts: dict[str, int] = {}
    for record in log:
        counts[record["request_id"]] = counts.get(record["request_id"], 0) + 1
    served = [r["served"] or {} for r in results]
    marked = sum(s.get("tier") == via and "llm" in (s.get("errors") or {}) for s in served)
    return {"requests": n, "concurrency": 32, **latency_block(results, wall),
            "lost": sum(r["status"] is None for r in results),
            "server_errors_5xx": sum((r["status"] or 0) >= 500 for r in results),
            "answered_by_llm": sum(s.get("tier") == "llm" for s in served),
            "local_answer_marked_llm_error": marked,
            "llm_faults_injected": injected,
            "logged_exactly_once": sum(count == 1 for count in counts.values()),
            "logged_missing": n - len(counts), "logged_twice_or_more": sum(count > 1 for count in counts.values()),
            "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_after, 1),
            "rss_growth": round(rss_after / rss_before - 1, 4),
            "rss_second_half_growth": round(rss_after / samples[len(samples) // 2] - 1, 4) if samples else None,
            "rss_samples_mb": samples[:: max(1, len(samples) // 20)]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classify-run", type=Path, required=True, help="a finished run with encoder and slm tiers")
    parser.add_argument("--extract-run", type=Path, help="a finished extraction run (slm tier)")
    parser.add_argument("--llm-model", type=Path, help="a model folder for `transformers serve` (the live cascade)")
    parser.add_argument("--load-requests", type=int, default=2000)
    parser.add_argument("--only", nargs="+", default=["parity", "numerics", "latency", "cascade", "load"])
    parser.add_argument("--numerics-n", type=int, default=40, help="extraction examples of the numerics part")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "router")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}

    def save(part: str) -> None:  # after each part: a later part failing loses nothing measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        shown = result[part] if part != "parity" else [{k: v for k, v in row.items() if k != "differences"}
                                                       for row in result[part]]  # fmt: skip
        print(json.dumps(shown), flush=True)

    if "parity" in args.only:
        result["parity"] = [parity(args.classify_run, tier, args.work) for tier in ("encoder", "slm")]
        if args.extract_run:
            result["parity"].append(parity(args.extract_run, "slm", args.work))
        save("parity")
    if "numerics" in args.only and args.extract_run:
        result["numerics"] = numerics(args.extract_run, args.numerics_n)
        save("numerics")
    if "latency" in args.only:
        result["encoder_latency"] = encoder_latency(args.classify_run, args.work)
        save("encoder_latency")
    cascade_run = args.work / "cascade-run"
    if args.llm_model and {"cascade", "load"} & set(args.only):
        port = LLM_PORT if port_is_free(LLM_PORT) else free_port()  # fixed: the response cache keys on the URL
        model = str(args.llm_model)  # transformers serve answers only to the name it was started with
        serve = Path(sys.executable).with_name("transformers")  # the CLI beside this interpreter
        command = [str(serve), "serve", str(args.llm_model), "--port", str(port), "--device", "cpu"]
        with Process(command, "/health", args.work / "transformers-serve.log", port, timeout_s=600):
            benchmark_against(args.classify_run, cascade_run, f"http://127.0.0.1:{port}/v1", model)
            if "cascade" in args.only:
                result["cascade_live"] = cascade_live(cascade_run, args.work)
                save("cascade_live")
        if "load" in args.only:  # the same LLM port, now the fault server's
            result["load"] = load(cascade_run, args.work, port, args.load_requests)
            save("load")


if __name__ == "__main__":
    main()
