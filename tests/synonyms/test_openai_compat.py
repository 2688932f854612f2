"""The OpenAI-compatible back end against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s3_hf.errors import SynonymSourceError
from s3_hf.synonyms import OpenAICompatSource

ANSWERS = {
    "good": '{"synonyms": ["alpha one", "alpha two"]}',
    "numbered": "Here you go:\n1. beta one\n2. beta two",
    "prose": "This one is hard, sorry, I cannot think of any.",
    "malformed": '{"synonyms": ["gamma one", "gamma two"',
}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out closes its socket while the "hang" handler still sleeps


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, payload: dict | str, headers: dict | None = None) -> None:
        data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        label = re.search(r'visual category "([^"]+)"', body["messages"][-1]["content"]).group(1)
        with self.server.lock:
            self.server.hits[label] += 1
            n = self.server.hits[label]
            self.server.bodies.append(body)
        if label == "unauthorized":
            return self._send(401, {"error": {"message": "Invalid API key"}})
        if label == "nojson" and "response_format" in body:
            return self._send(400, {"error": {"message": "response_format is not supported by this server"}})
        if label == "flaky" and n == 1:
            return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
        if label == "broken":
            return self._send(500, {"error": {"message": "internal error"}})
        if label == "hang":
            time.sleep(3)
        content = ANSWERS.get(label, '{"synonyms": ["delta one"]}')
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def source(server: Server, tmp_path, **kwargs) -> OpenAICompatSource:
    options = {"timeout": 0.5, "max_retries": 2, "backoff": 0.05, "concurrency": 4, "cache": tmp_path / "cache"}
    return OpenAICompatSource("test-model", f"http://127.0.0.1:{server.server_port}/v1", **{**options, **kwargs})


def test_answers_retries_and_fallbacks(server, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    labels = ["good", "numbered", "prose", "malformed", "flaky", "broken", "hang", "nojson"]
    src = source(server, tmp_path)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        got = src.synonyms(labels)
    elapsed = time.monotonic() - start
    assert got == {
        "good": ["alpha one", "alpha two"],
        "numbered": ["beta one", "beta two"],
        "prose": [],
        "malformed": ["gamma one", "gamma two"],
        "flaky": ["delta one"],
        "broken": [],
        "hang": [],
        "nojson": ["delta one"],
    }
    assert server.hits["flaky"] == 2  # one 429, one retry
    assert server.hits["broken"] == 3 and server.hits["hang"] == 3  # 1 + max_retries, then give up
    assert elapsed < 8, "timeouts and retries must bound the run"
    assert sorted(src.fallbacks) == ["broken", "hang", "prose"]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "'prose' falls back to label-only" in text and "'hang' falls back" in text
    assert all(b["model"] == "test-model" and b["temperature"] == 0.0 for b in server.bodies)
    assert src.provenance()["prompt_version"] and src.provenance()["model"] == "test-model"


def test_cache_skips_answered_labels_and_retries_failed_ones(server, tmp_path):
    labels = ["good", "broken"]
    source(server, tmp_path).synonyms(labels)
    before = dict(server.hits)
    again = source(server, tmp_path).synonyms(labels)
    assert again == {"good": ["alpha one", "alpha two"], "broken": []}
    assert server.hits["good"] == before["good"]  # cached
    assert server.hits["broken"] == before["broken"] + 3  # failures are not cached


def test_bad_credentials_abort_with_a_clear_error(server, tmp_path):
    with pytest.raises(SynonymSourceError, match="answered 401"):
        source(server, tmp_path).synonyms(["unauthorized"])


def test_unreachable_server(tmp_path):
    src = OpenAICompatSource("m", "http://127.0.0.1:9/v1", timeout=0.5, cache=False)
    with pytest.raises(SynonymSourceError, match="Cannot reach"):
        src.synonyms(["anything"])
