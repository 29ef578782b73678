"""The OpenAI-compatible policy, over real HTTP on loopback.

A stdlib fake server pins request and response handling; llama-cpp-python's server with the embedded
GGUF file is the real OpenAI-compatible server (skipped where it is not installed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kerneldisc.errors import ConfigError
from kerneldisc.policy import PolicyError, make_policy
from kerneldisc.policy.models import embedded_gguf_path
from kerneldisc.policy.openai import OpenAIPolicy

CHAT = [{"role": "user", "content": "Say hi"}]


class _Fake(BaseHTTPRequestHandler):
    """Answers like an OpenAI server that honours at most `max_n` choices per request."""

    max_n = 8
    status = 200
    raw_reply: bytes | None = None
    requests: list[tuple[str, dict, str | None]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body, self.headers.get("Authorization")))
        n = min(body.get("n", 1), self.max_n)
        if self.path.endswith("/chat/completions"):
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": f"reply {i}"},
                    "logprobs": {
                        "content": [{"token": "re", "logprob": -0.5}, {"token": "ply", "logprob": -0.25}]
                    },
                    "finish_reason": "stop",
                }
                for i in range(n)
            ]
        else:
            choices = [
                {
                    "index": i,
                    "text": f" text {i}",
                    "logprobs": {"token_logprobs": [-1.0, -2.0]},
                    "finish_reason": "length",
                }
                for i in range(n)
            ]
        payload = self.raw_reply if self.raw_reply is not None else json.dumps({"choices": choices}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_chat_prompt_posts_n_and_logprobs_and_parses_choices(fake):
    url, handler = fake
    policy = OpenAIPolicy(
        base_url=url, model="m", api_key="secret", seed=5, temperature=0.8, max_new_tokens=64
    )
    groups = policy.sample([CHAT], k=3)
    assert [c.text for c in groups[0]] == ["reply 0", "reply 1", "reply 2"]
    assert groups[0][0].logprobs == [-0.5, -0.25]
    assert groups[0][0].token_ids == [] and groups[0][0].prompt_token_ids == []
    route, body, auth = handler.requests[0]
    assert route == "/v1/chat/completions"
    assert (body["model"], body["n"], body["logprobs"], body["messages"]) == ("m", 3, True, CHAT)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.8, 64, 5)
    assert auth == "Bearer secret"


def test_raw_prompt_uses_the_completions_route(fake):
    url, handler = fake
    groups = OpenAIPolicy(base_url=url + "/v1", model="m").sample(["def f():"], k=2)
    assert [c.text for c in groups[0]] == [" text 0", " text 1"]
    assert groups[0][1].logprobs == [-1.0, -2.0] and groups[0][1].finish_reason == "length"
    assert handler.requests[0][0] == "/v1/completions"
    assert handler.requests[0][1]["prompt"] == "def f():"


def test_server_that_ignores_n_is_asked_until_k_completions(fake):
    url, handler = fake
    handler.max_n = 1
    groups = OpenAIPolicy(base_url=url, model="m", seed=0).sample([CHAT, "x"], k=3)
    assert [len(g) for g in groups] == [3, 3]
    assert [body["n"] for _, body, _ in handler.requests] == [3, 2, 1, 3, 2, 1]
    assert len({body["seed"] for _, body, _ in handler.requests}) == 6  # every request draws afresh


def test_endpoint_and_model_come_from_the_environment(fake, monkeypatch):
    url, handler = fake
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("MY_KEY", "k2")
    policy = make_policy("openai", api_key_env="MY_KEY", trainer=None, top_k=None)
    policy.sample([CHAT], 1)
    _, body, auth = handler.requests[0]
    assert body["model"] == "env-model" and auth == "Bearer k2"


def test_missing_endpoint_or_model_says_which_flag_or_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        OpenAIPolicy(model="m")
    with pytest.raises(ConfigError, match="OPENAI_MODEL"):
        OpenAIPolicy(base_url="http://127.0.0.1:1")


def test_server_down_is_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = OpenAIPolicy(base_url=f"http://127.0.0.1:{port}", model="m", timeout_s=5)
    with pytest.raises(PolicyError, match=f"cannot reach the endpoint http://127.0.0.1:{port}/v1"):
        policy.sample([CHAT], 1)


def test_http_error_reports_status_and_hint(fake):
    url, handler = fake
    handler.status = 401
    handler.raw_reply = b'{"error": "bad key"}'
    with pytest.raises(PolicyError, match=r"HTTP 401 \(check the API key\).*bad key"):
        OpenAIPolicy(base_url=url, model="m").sample([CHAT], 1)


def test_non_json_and_malformed_replies_are_reported(fake):
    url, handler = fake
    handler.raw_reply = b"<html>gateway</html>"
    with pytest.raises(PolicyError, match="not JSON"):
        OpenAIPolicy(base_url=url, model="m").sample([CHAT], 1)
    handler.raw_reply = b'{"choices": [{"index": 0}]}'
    with pytest.raises(PolicyError, match="unexpected format"):
        OpenAIPolicy(base_url=url, model="m").sample([CHAT], 1)


def test_frozen_policy_ignores_adapters_and_keeps_its_request_count(fake, tmp_path):
    url, _ = fake
    policy = OpenAIPolicy(base_url=url, model="m")
    policy.load_adapter(tmp_path)
    policy.sample([CHAT], 2)
    state = policy.state_dict()
    fresh = OpenAIPolicy(base_url=url, model="m")
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state == {"requests": 1}


# --- a real OpenAI-compatible server ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Server:
    url: str
    process: subprocess.Popen
    log: Path

    def death(self) -> str | None:
        """Why the server is gone (exit code or signal and its log's tail), or None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        return f"llama_cpp.server {how}: {self.log.read_text(errors='replace')[-1500:]}"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[_Server]:
    """llama-cpp-python's OpenAI-compatible server with the embedded GGUF file, on loopback."""
    pytest.importorskip(
        "llama_cpp.server",
        reason="needs llama-cpp-python's server: pip install 'llama-cpp-python[server]==0.3.36' "
        "(builds llama.cpp from source, several minutes)",
    )
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    log_file = log.open("wb")  # a file, not a pipe: its start-up log would fill a pipe and stall it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_gguf_path()),
            "--model_alias",
            "smollm2",
        ]
        + ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2):
                    break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not answer within 120 s")
                time.sleep(0.5)
        yield _Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


@pytest.mark.slow
def test_real_server_returns_k_completions_with_logprobs(llama_server):
    policy = make_policy("openai", model="smollm2", base_url=llama_server.url, seed=1, max_new_tokens=12)
    try:
        chat, raw = policy.sample(
            [[{"role": "user", "content": "What is the capital of France?"}], "def add(a, b):"], 2
        )
    except PolicyError:
        time.sleep(1)  # a crashed server needs a moment to be reaped; its log says why it went
        death = llama_server.death()
        if death:
            pytest.fail(death)
        raise
    for c in chat + raw:
        assert c.text.strip()
        assert 0 < len(c.logprobs) <= 12
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.finish_reason in ("stop", "length")
    assert len(chat) == len(raw) == 2
