"""An API key never reaches a file, a log or the screen: not when pasted on the command line (a single run
or a Hydra multirun), not when an endpoint echoes it back (in a redirect, an error body or a 200 answer, in
any common encoding). Real `train.py` processes and a real loopback server."""

import base64
import binascii
import logging
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from helpers.fault_server import FaultServer, key_forms
from helpers.files import REPO, read_jsonl
from slmtier.baselines.api_keys import build_key_mask, check_command_line
from slmtier.baselines.cache import ResponseCache
from slmtier.baselines.openai_compatible import ChatClient
from slmtier.cli.errors import exit_on_user_error
from slmtier.config import EndpointConfig
from slmtier.errors import SlmtierError

PASTED_KEY = "sk-proj-Zq81VxPLANTED0c2bd9e4F7a"
# Mixed case, and + / = so that URL-encoding, JSON escapes and both base64 alphabets differ from the key.
ECHOED_KEY = "sk-Echoed+Key/7f3a9c1e5b=Qx"


def reveals(text: str, key: str) -> bool:
    """Whether the key can be read back from `text`: as is in any case, URL-decoded, or decoded from any run
    of hex or base64 (either alphabet, at every alignment: the key may sit inside `user:key`)."""
    readings = [text, urllib.parse.unquote(text), urllib.parse.unquote_plus(text), text.replace("\\/", "/")]
    for run in re.findall(r"[0-9A-Fa-f]{16,}", text):
        readings += [bytes.fromhex(run[start:][: (len(run) - start) // 2 * 2]).decode("latin-1") for start in (0, 1)]
    for run in re.findall(r"[A-Za-z0-9+/_-]{12,}", text):
        for start in range(4):
            chars = run[start:][: (len(run) - start) // 4 * 4]
            for alphabet in (chars, chars.replace("-", "+").replace("_", "/")):
                try:
                    readings.append(base64.b64decode(alphabet, validate=True).decode("latin-1"))
                except binascii.Error:
                    pass
    return any(key.lower() in reading.lower() for reading in readings)


def written_under(folder: Path) -> str:
    return "\n".join(path.read_bytes().decode("latin-1") for path in folder.rglob("*") if path.is_file())


TRAIN_PY = [str(REPO / "train.py")]
SLMTIER_TRAIN = ["-m", "slmtier", "train"]


def run_train(*args: str, cwd: Path, entry: list[str] = TRAIN_PY) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLMTIER_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, *entry, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


# --- A key pasted on the command line


@pytest.mark.parametrize("entry", [TRAIN_PY, SLMTIER_TRAIN], ids=["train.py", "slmtier train"])
def test_a_key_pasted_into_a_multirun_is_refused_before_hydra_writes_anything(tmp_path, entry):
    """Hydra writes multirun.yaml (every override, verbatim) before the first job starts."""
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "recipe=ticket_classifier", "baseline=openai_compatible", "lora.r=4,8",
        f"baseline.endpoint.api_key_env={PASTED_KEY}", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, entry=entry,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "baseline.endpoint.api_key_env" in result.stderr and "environment" in result.stderr
    assert "Traceback" not in result.stderr
    assert PASTED_KEY not in result.stdout + result.stderr
    assert not sweep.exists() and PASTED_KEY not in written_under(tmp_path)


def test_a_key_pasted_into_a_url_is_refused_before_anything_is_printed_or_written(tmp_path):
    """Not only api_key_env: a key in the endpoint URL would reach config.yaml, metrics.json, the cache and
    the "cannot reach" message. This key has no provider prefix: the URL's `?key=` gives it away."""
    run_dir, key = tmp_path / "run", "Zq81VxPLANTED0c2bd9e4F7a"
    result = run_train(
        "recipe=ticket_classifier", "baseline=openai_compatible", "baseline.endpoint.api_key_env=null",
        f'baseline.endpoint.base_url="http://127.0.0.1:9/v1?key={key}"', f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "baseline.endpoint.base_url" in result.stderr and "a key or token in a URL" in result.stderr
    assert key not in result.stdout + result.stderr
    assert not run_dir.exists() and key not in written_under(tmp_path)


@pytest.mark.parametrize(
    ("arg", "secret"),
    [
        (f"baseline.endpoint.api_key_env={PASTED_KEY}", PASTED_KEY),
        (f"+baseline.endpoint.api_key_env={PASTED_KEY},OPENAI_API_KEY", PASTED_KEY),  # a sweep
        ("baseline.endpoint.api_key_env=0c2bd9e4f7a1b2c3d4e5", "0c2bd9e4f7a1b2c3d4e5"),  # no prefix (hex)
        ("baseline.endpoint.api_key_env=a0c2bd9e4f7a1b2c3d4e5f6a7b8c9d0e", "a0c2bd9e4f7a1b2c3d4e5f6a7b8c9d0e"),
        ("baseline.endpoint.base_url='https://gw.example/v1?api_key=abc123def456'", "abc123def456"),
        ("baseline.endpoint.base_url=https://me:s3cret-pass@gw.example/v1", "s3cret-pass"),
        ("baseline.endpoint.api_key_header='Authorization: Bearer 9f8e7d6c5b4a39281706'", "9f8e7d6c5b4a39281706"),
        ("baseline.endpoint.model=hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
        ("tracking.project=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2ln", "eyJhbGciOiJIUzI1NiJ9"),
        ("hydra.run.dir=runs/AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (f"{PASTED_KEY}=1", PASTED_KEY),  # the key where the override's name goes: not repeated either
    ],
)
def test_secrets_on_the_command_line_are_refused_without_being_repeated(arg, secret):
    with pytest.raises(SlmtierError) as refused:
        check_command_line(["recipe=ticket_classifier", arg])
    assert "argument 2" in str(refused.value) and "environment" in str(refused.value)
    assert secret not in str(refused.value)


def test_ordinary_command_lines_pass():
    check_command_line(
        [
            "-m", "--cfg", "job", "recipe=ticket_classifier", "lora.r=4,8", "hydra/sweeper=optuna",
            "baseline.endpoint.api_key_env=OPENAI_API_KEY", "baseline.endpoint.api_key_env=null",
            "baseline.endpoint.api_key_env=choice(KEY_A,KEY_B)", "baseline.endpoint.api_key_header=api-key",
            "model.revision=0123456789abcdef0123456789abcdef01234567", "data.path=data/task-tickets-2024-11.jsonl",
            "baseline.endpoint.base_url=https://x.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-06-01",
            "baseline.endpoint.base_url=http://localhost:11434/v1", "hydra.sweep.dir=multirun/sk-test",
            "task.instruction='A basic question about the bearer of the ticket'",
        ]
    )  # fmt: skip


# --- A key echoed by the endpoint


def test_the_key_mask_covers_the_common_encodings():
    mask = build_key_mask(ECHOED_KEY)
    for name, form in key_forms(ECHOED_KEY).items():
        text = f"before {form} after"
        assert not reveals(mask(text), ECHOED_KEY), name
        assert mask(text).startswith("before ") and mask(text).endswith(" after"), name
    assert mask("the billing queue") == "the billing queue" and build_key_mask(None)("x") == "x"
    assert reveals(" ".join(key_forms(ECHOED_KEY).values()), ECHOED_KEY)  # the detector itself detects


def test_a_redirect_carrying_the_key_is_reported_masked(tmp_path, capsys):
    with FaultServer(lambda text, attempt: "redirect_key") as server:
        endpoint = EndpointConfig(base_url=server.base_url, model="fault-model", api_key_env=None)
        cache = ResponseCache(tmp_path / "cache.sqlite")
        with pytest.raises(SystemExit) as stopped, exit_on_user_error():
            ChatClient(endpoint, cache, api_key=ECHOED_KEY).complete_all([[{"role": "user", "content": "row 0"}]])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and "HTTP 302, redirected to" in stderr and "?key=***" in stderr
    assert not reveals(stderr, ECHOED_KEY)


def test_an_echoed_key_cached_by_an_older_version_is_masked_when_read(tmp_path):
    from slmtier.baselines.cache import build_cache_key
    from slmtier.baselines.chat_protocol import build_request_params

    messages = [{"role": "user", "content": "row 0"}]
    endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=None)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    key = build_cache_key(endpoint.base_url, endpoint.model, messages, build_request_params(endpoint))
    reply = {"content": f"echo {ECHOED_KEY}", "input_tokens": 1, "output_tokens": 1, "latency_ms": 1.0}
    cache.put(key, base_url=endpoint.base_url, model="m", response={**reply, "finish_reason": None, "model": "m"})
    [outcome] = ChatClient(endpoint, cache, api_key=ECHOED_KEY).complete_all([messages])
    assert outcome.cached and outcome.reply.content == "echo ***"


def test_a_key_echoed_in_answers_and_errors_is_stored_nowhere(tmp_path, monkeypatch, caplog, capsys):
    """The key comes back in 200 answers (text and model id) and in 500 error bodies, in every encoding:
    the rows, the predictions file and the response cache hold only ***; the answers' other words stay."""
    from slmtier.baselines.candidates import EndpointCandidate
    from slmtier.benchmark.candidates import run_candidate
    from slmtier.config import compose_config, to_run_config
    from slmtier.data import Example
    from slmtier.tasks import build_task

    monkeypatch.setenv("SLMTIER_TEST_ECHOED_KEY", ECHOED_KEY)
    caplog.set_level(logging.DEBUG)
    faults = ["echo_key", "echo_key", "echo_key_500", "ok"]
    task = build_task(to_run_config(compose_config(["recipe=ticket_classifier"])).task)
    examples = [Example(id=f"t{i}", input=f"ticket number {i}", target="billing") for i in range(len(faults))]

    def plan(text: str, attempt: int) -> str:
        return faults[int(re.search(r"ticket number (\d+)", text).group(1))]

    with FaultServer(plan) as server:
        endpoint = EndpointConfig(
            base_url=server.base_url, model="fault-model", api_key_env="SLMTIER_TEST_ECHOED_KEY",
            timeout_s=2.0, max_retries=1, backoff_initial_s=0.01, backoff_max_s=0.02,
        )  # fmt: skip
        candidate = EndpointCandidate(
            "llm", "fault-model", endpoint, tmp_path / "cache" / "llm.sqlite", price=None, count_tokens=len
        )
        rows, _ = run_candidate(candidate, task, examples, tmp_path / "predictions")

    assert [row["error"] is None for row in rows] == [True, True, False, True]  # answers kept, the 500 failed
    assert "HTTP 500" in rows[2]["error"] and "ticket number 0" in rows[0]["raw_output"]
    assert rows[0]["raw_output"].count("***") >= len(key_forms(ECHOED_KEY))
    seen = {
        "rows": repr(rows),
        "predictions file": written_under(tmp_path / "predictions"),
        "cache (SQLite file, WAL)": written_under(tmp_path / "cache"),
        "log records": caplog.text,
        "stdout/stderr": "".join(capsys.readouterr()),
        "candidate info": repr(candidate.info),
    }
    assert len(written_under(tmp_path / "cache")) > 0
    assert [where for where, text in seen.items() if reveals(text, ECHOED_KEY)] == []
    assert read_jsonl(tmp_path / "predictions" / "llm.jsonl")[1]["raw_output"] == rows[1]["raw_output"]
