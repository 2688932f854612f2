"""Faults of an OpenAI-compatible server, acted out by a raw TCP server on 127.0.0.1: each costs one label.

Every server thread is a daemon and bounded (it stops when the client goes away or after ``SERVER_CAP`` seconds),
and every client timeout is small, so no test can hang.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import struct
import threading
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from s3_hf.cli import main
from s3_hf.errors import SynonymSourceError
from s3_hf.synonyms import LLMSource, OpenAICompatSource

SERVER_CAP = 20.0  # no server thread lives longer than this
HUGE = 50 * 1024 * 1024
BLOCK = b"x" * (64 * 1024)

Behaviour = Callable[["FaultServer", socket.socket, str, int], None]


def http_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def completion(content: object) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def synonyms_of(label: str) -> str:
    return json.dumps({"synonyms": [f"{label} one", f"{label} two"]})


# ------------------------------------------------------------------------------------------- behaviours
def ok(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
    conn.sendall(http_response(200, completion(synonyms_of(label))))


def sender(raw: bytes) -> Behaviour:
    def send(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
        conn.sendall(raw)

    return send


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    return sender(http_response(status, body, headers))


def rate_limited_once(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
    if n == 1:
        conn.sendall(http_response(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"}))
    else:
        ok(srv, conn, label, n)


def trickle(head_at_once: bool) -> Behaviour:
    """A valid-looking answer, one byte every 50 ms: from the status line on, or after the headers."""

    def send(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        stream = b'{"choices": [{"message": {"content": "' + b" " * 100000
        if head_at_once:
            conn.sendall(head)
        else:
            stream = head + stream
        end = time.monotonic() + SERVER_CAP
        for i in range(len(stream)):
            if time.monotonic() > end:
                return
            conn.sendall(stream[i : i + 1])  # raises once the client has gone
            time.sleep(0.05)

    return send


def hang(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
    conn.settimeout(SERVER_CAP)
    conn.recv(1)  # returns when the client gives up


def reset(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closing sends a RST


def silent(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
    pass  # the connection closes without a byte of answer


def huge(framing: str, status: int = 200) -> Behaviour:
    """A 50 MB answer, declared in Content-Length, delimited by closing, or chunked; bytes sent are counted."""

    def send(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        head += {
            "content-length": f"Content-Length: {HUGE}\r\n",
            "close": "Connection: close\r\n",
            "chunked": "Transfer-Encoding: chunked\r\n",
        }[framing]
        conn.sendall(head.encode() + b"\r\n")
        block = f"{len(BLOCK):x}\r\n".encode() + BLOCK + b"\r\n" if framing == "chunked" else BLOCK
        end = time.monotonic() + SERVER_CAP
        sent = 0
        while sent < HUGE and time.monotonic() < end:
            conn.sendall(block)  # raises once the client has gone
            sent += len(block)
            with srv.lock:
                srv.sent[label] = sent

    return send


# ----------------------------------------------------------------------------------------------- server
class FaultServer:
    """Reads each HTTP request, finds the label it asks about, and acts out that label's behaviour."""

    def __init__(self, behaviours: dict[str, Behaviour]) -> None:
        self.behaviours = behaviours
        self.hits: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        start = time.monotonic()
        label = "?"
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(body) < length:
                body += conn.recv(65536)
            prompt = json.loads(body)["messages"][-1]["content"]
            label = re.search(r'visual category "([^"]+)"', prompt).group(1)
            with self.lock:
                self.hits[label] += 1
                n = self.hits[label]
            self.behaviours.get(label, ok)(self, conn, label, n)
        except OSError:
            pass  # the client gave up: that is what most faults are for
        finally:
            with self.lock:
                self.durations[label].append(time.monotonic() - start)
            conn.close()

    def stop_listening(self) -> None:
        """From now on, connecting is refused (connections already accepted go on)."""
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[FaultServer] = []

    def start(behaviours: dict[str, Behaviour] | None = None) -> FaultServer:
        servers.append(FaultServer(behaviours or {}))
        return servers[-1]

    yield start
    for srv in servers:
        srv.stop_listening()


def client(srv: FaultServer, cache: Path | bool = False, **kwargs: object) -> OpenAICompatSource:
    options: dict = {"timeout": 0.5, "max_retries": 1, "backoff": 0.01, "concurrency": 8, "cache": cache}
    return OpenAICompatSource("test-model", srv.url, **{**options, **kwargs})


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ------------------------------------------------------------------------------------------------ tests
TRUNCATED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"choices": [{"mes'
FAULTS = {  # label: (behaviour, cause in the warning, requests made with max_retries=1)
    "garbage": (sender(b"\x00\x01\xffSSH-2.0-not-http\r\n\r\n"), "not HTTP", 2),
    "garbage-endless": (sender(b"\xff" * 200_000), "not HTTP", 2),
    "truncated": (sender(TRUNCATED), "truncated answer: the connection closed after 18 of 1,000 bytes", 2),
    "reset": (reset, "reset|closed the connection", 2),
    "silent": (silent, "closed the connection without answering", 2),
    "hang": (hang, r"no complete answer within 0\.5 s", 2),
    "trickle-head": (trickle(head_at_once=False), r"no complete answer within 0\.5 s", 2),
    "trickle-body": (trickle(head_at_once=True), r"no complete answer within 0\.5 s", 2),
    "error500": (answer(500, b'{"error": {"message": "internal"}}'), "answered 500", 2),
    "redirect": (
        answer(308, b"", {"Location": "https://elsewhere.example/v1/chat/completions"}),
        "redirected to https://elsewhere.example/v1;",
        1,
    ),
    "object": (answer(200, completion({"synonyms": ["a", "b"]})), "content is a JSON object", 1),
    "list": (answer(200, completion(["a", "b"])), "content is a JSON list", 1),
    "null": (answer(200, completion(None)), "content is null", 1),
    "number": (answer(200, completion(7)), "content is a JSON int", 1),
    "nochoices": (answer(200, b'{"id": "x", "object": "chat.completion"}'), "no 'choices'", 1),
    "emptychoices": (answer(200, b'{"choices": []}'), "no 'choices'", 1),
    "notjson": (answer(200, b"<html>Bad gateway</html>"), "not JSON", 1),
    "deepjson": (answer(200, b"[" * 100_000 + b"]" * 100_000), "not JSON", 1),
}


@pytest.mark.parametrize("label", list(FAULTS))
def test_each_fault_costs_only_its_label(serve, tmp_path, caplog, label):
    behaviour, cause, requests = FAULTS[label]
    srv = serve({label: behaviour})
    src = client(srv, cache=tmp_path / "cache")
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        got = src.synonyms(["good", label])
    assert time.monotonic() - start < 5
    assert got == {"good": ["good one", "good two"], label: []}
    assert src.fallbacks == [label]
    assert srv.hits[label] == requests  # transport failures and 5xx are retried, malformed answers are not
    text = warnings_of(caplog)
    assert re.search(rf"'{label}' falls back to label-only: the request failed: .*({cause})", text), text
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert [e["label"] for e in cached] == ["good"]  # the failed label is asked again next time


def test_every_fault_in_one_run(serve, caplog):
    srv = serve({label: behaviour for label, (behaviour, _, _) in FAULTS.items()})
    labels = ["good", *FAULTS, "fine"]
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        got = client(srv, concurrency=len(labels)).synonyms(labels)
    assert time.monotonic() - start < 6
    assert got["good"] == ["good one", "good two"] and got["fine"] == ["fine one", "fine two"]
    assert all(got[label] == [] for label in FAULTS)
    assert warnings_of(caplog).count("falls back to label-only") == len(FAULTS)


def test_trickle_with_a_five_second_timeout_is_abandoned_in_time(serve, caplog):
    srv = serve({"slow": trickle(head_at_once=True)})
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        got = client(srv, timeout=5, max_retries=1).synonyms(["slow"])
    elapsed = time.monotonic() - start
    assert got == {"slow": []} and srv.hits["slow"] == 2
    assert elapsed < 2 * 15, "each attempt must end within 3 x the timeout"
    deadline = time.monotonic() + 2
    while len(srv.durations["slow"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the client has gone at its next byte
    assert len(srv.durations["slow"]) == 2
    assert all(4.5 < d < 15 for d in srv.durations["slow"]), srv.durations["slow"]
    assert "no complete answer within 5 s (2 attempts)" in warnings_of(caplog)


@pytest.mark.parametrize(
    ("framing", "status"), [("content-length", 200), ("close", 200), ("chunked", 200), ("close", 500)]
)
def test_a_50_mb_answer_is_refused_without_reading_it(serve, caplog, framing, status):
    srv = serve({"huge": huge(framing, status)})
    tracemalloc.start()
    start = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING):
            got = client(srv, timeout=10, max_retries=0).synonyms(["huge"])
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == {"huge": []} and srv.hits["huge"] == 1
    assert elapsed < 5
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert srv.sent["huge"] < HUGE // 4, f"the server sent {srv.sent['huge'] / 2**20:.1f} MiB"
    expected = "answered 500" if status == 500 else "limit"
    assert expected in warnings_of(caplog)


def test_the_size_limit_is_configurable(serve):
    srv = serve()
    assert client(srv, max_response_bytes=50).synonyms(["small"]) == {"small": []}
    assert client(srv).synonyms(["small"]) == {"small": ["small one", "small two"]}


def test_429_then_success_is_retried(serve):
    srv = serve({"flaky": rate_limited_once})
    assert client(srv, max_retries=2).synonyms(["flaky"]) == {"flaky": ["flaky one", "flaky two"]}
    assert srv.hits["flaky"] == 2


def test_500_always_falls_back_after_the_retries(serve, caplog):
    srv = serve({"broken": answer(500, b'{"error": {"message": "internal"}}')})
    with caplog.at_level(logging.WARNING):
        assert client(srv, max_retries=3).synonyms(["broken", "good"])["broken"] == []
    assert srv.hits["broken"] == 4
    assert "'broken' falls back to label-only: the request failed: the server answered 500" in warnings_of(caplog)
    assert "(4 attempts)" in warnings_of(caplog)


def test_a_crash_inducing_answer_is_not_cached_and_asked_again(serve, tmp_path):
    srv = serve({"cat": answer(200, completion({"synonyms": ["kitty"]}))})
    cache = tmp_path / "cache"
    assert client(srv, cache).synonyms(["cat"]) == {"cat": []}
    assert client(srv, cache).synonyms(["cat"]) == {"cat": []}  # no crash on a cached entry
    assert srv.hits["cat"] == 2, "the second run asks the server again"
    srv.behaviours["cat"] = ok
    assert client(srv, cache).synonyms(["cat"]) == {"cat": ["cat one", "cat two"]}
    assert client(srv, cache).synonyms(["cat"]) == {"cat": ["cat one", "cat two"]}
    assert srv.hits["cat"] == 3, "a good answer is cached"


POISON = {
    "not json": b"{not json",
    "not utf-8": b"\xff\xfe\x00\x81",
    "a list": b'["cat one"]',
    "an object answer (older releases cached those)": b'{"label": "cat", "answer": {"synonyms": ["kitty"]}}',
    "a null answer": b'{"label": "cat", "answer": null}',
    "no answer": b'{"label": "cat"}',
    "deep nesting": b"[" * 100_000,
    "empty": b"",
}


@pytest.mark.parametrize("poison", list(POISON))
def test_a_malformed_cache_entry_is_ignored_and_replaced(serve, tmp_path, poison):
    srv = serve()
    cache = tmp_path / "cache"
    client(srv, cache).synonyms(["cat"])
    (entry,) = cache.rglob("*.json")
    entry.write_bytes(POISON[poison])
    assert client(srv, cache).synonyms(["cat"]) == {"cat": ["cat one", "cat two"]}
    assert srv.hits["cat"] == 2
    assert json.loads(entry.read_text())["answer"] == synonyms_of("cat")  # overwritten by the good answer
    assert client(srv, cache).synonyms(["cat"]) == {"cat": ["cat one", "cat two"]}
    assert srv.hits["cat"] == 2


class ObjectSource(LLMSource):
    """A back end (like a local transformers model) handing back something that is not text."""

    name = "object"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def settings(self) -> dict:
        return {"model": "object-v1"}

    def _generate(self, batch: list) -> list:
        self.calls += len(batch)
        return [{"synonyms": ["kitty"]} for _ in batch]


def test_a_back_end_answer_that_is_not_text_falls_back_uncached(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert ObjectSource(cache=tmp_path / "cache").synonyms(["cat"]) == {"cat": []}
    second = ObjectSource(cache=tmp_path / "cache")
    assert second.synonyms(["cat"]) == {"cat": []} and second.calls == 1
    assert "returned dict instead of text" in warnings_of(caplog)


def test_an_unwritable_cache_costs_nothing_but_caching(serve, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    srv = serve()
    with caplog.at_level(logging.WARNING):
        assert client(srv, blocker).synonyms(["cat", "dog"]) == {
            "cat": ["cat one", "cat two"],
            "dog": ["dog one", "dog two"],
        }
    assert "Cannot write the synonym cache" in warnings_of(caplog)


def test_a_server_going_away_mid_run_costs_the_remaining_labels(serve, caplog):
    def answer_then_go(srv: FaultServer, conn: socket.socket, label: str, n: int) -> None:
        srv.stop_listening()
        ok(srv, conn, label, n)

    srv = serve({"first": answer_then_go})
    with caplog.at_level(logging.WARNING):
        got = client(srv, concurrency=1).synonyms(["first", "second"])
    assert got == {"first": ["first one", "first two"], "second": []}
    assert re.search(r"'second' falls back .*refused", warnings_of(caplog), re.I)


def test_a_server_never_reached_still_aborts(serve):
    srv = serve()
    srv.stop_listening()
    with pytest.raises(SynonymSourceError, match="Cannot reach"):
        client(srv).synonyms(["cat", "dog"])


def test_tls_to_a_plain_http_server_aborts_before_any_answer(serve):
    srv = serve()
    src = client(srv)
    src.base_url = src.base_url.replace("http://", "https://")
    with pytest.raises(SynonymSourceError, match="Cannot reach"):
        src.synonyms(["cat"])


def test_bad_credentials_still_abort(serve):
    srv = serve({"cat": answer(401, b'{"error": {"message": "Invalid API key"}}')})
    with pytest.raises(SynonymSourceError, match="answered 401"):
        client(srv).synonyms(["cat"])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", math.nan),
        ("timeout", math.inf),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_response_bytes", 0),
    ],
)
def test_limits_are_validated(option, value):
    with pytest.raises(SynonymSourceError, match=option):
        OpenAICompatSource("m", "http://127.0.0.1:9/v1", cache=False, **{option: value})


def test_a_base_url_without_scheme_is_refused():
    with pytest.raises(SynonymSourceError, match="http://"):
        OpenAICompatSource("m", "localhost:8000/v1", cache=False)


# -------------------------------------------------------------------------------------------------- CLI
def run_cli(tmp_path: Path, url: str, *flags: str) -> int:
    labels = tmp_path / "labels.txt"
    labels.write_text("good\nbroken\n")
    out = tmp_path / "syn.yaml"
    argv = ["synonyms", str(labels), "--source", "openai", "--model", "m", "--base-url", url, "--out", str(out)]
    return main([*argv, "--no-cache", *flags])


def test_cli_timeout_and_retries_reach_the_source(serve, tmp_path, capsys):
    srv = serve({"broken": answer(500, b"{}")})
    assert run_cli(tmp_path, srv.url, "--timeout", "0.5", "--retries", "0") == 0
    assert srv.hits["broken"] == 1, "--retries 0: no retry"
    assert "1 label-only: broken" in capsys.readouterr().out
    assert run_cli(tmp_path, srv.url, "--timeout", "0.5", "--retries", "1") == 0  # one retry, after 1 s of backoff
    assert srv.hits["broken"] == 1 + 2


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--timeout", "0"], "--timeout"), (["--timeout", "nan"], "--timeout"), (["--retries", "-1"], "--retries")],
)
def test_cli_rejects_bad_limits(tmp_path, capsys, flags, needle):
    assert run_cli(tmp_path, "http://127.0.0.1:9/v1", *flags) == 2
    assert needle in capsys.readouterr().err


def test_cli_rejects_a_timeout_that_is_not_a_number(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path, "http://127.0.0.1:9/v1", "--timeout", "soon")
    assert exc.value.code == 2 and "--timeout" in capsys.readouterr().err
