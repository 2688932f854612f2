"""Synonyms from any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, TGI, llama.cpp, Ollama, ...)."""

from __future__ import annotations

import errno
import functools
import http.client
import io
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from s3_hf.errors import S3Error, SynonymSourceError
from s3_hf.synonyms.llm import FailedRequest, LLMSource, Messages

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20  # a synonym list is a few hundred bytes; 1 MiB leaves room for verbose servers
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, enough to report why
CHUNK_BYTES = 64 * 1024
MAX_RETRY_AFTER = 60.0


class _AttemptFailed(Exception):
    """One attempt of a request failed. ``retry``: another attempt may succeed; ``unreachable``: no connection
    could be made (see ``_is_unreachable``)."""

    def __init__(
        self, reason: str, *, retry: bool, unreachable: bool = False, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.unreachable = unreachable
        self.headers: Mapping[str, str] = headers or {}


# --------------------------------------------------------------------------------------------- bounded transport
class _DeadlineReader(io.RawIOBase):
    """A socket's raw reader whose every read may only use the time left before ``deadline``.

    A socket timeout bounds one read, so a server sending a byte every few seconds never trips it; giving each
    read the remaining time instead bounds the whole answer, status line and headers included."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds a reference, like http.client's own reader
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the time allowed for the request ran out")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client.HTTPResponse`` needs of a socket (``makefile``), with a deadline on every read."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _deadline_response(sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> http.client.HTTPResponse:
    return http.client.HTTPResponse(_DeadlineSocket(sock, deadline), *args, **kwargs)  # type: ignore[arg-type]


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_class = functools.partial(_deadline_response, deadline=deadline)  # type: ignore[assignment]


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response_class = functools.partial(_deadline_response, deadline=deadline)  # type: ignore[assignment]


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, deadline=self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPSConnection, deadline=self._deadline), req, context=self._context)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A chat completion is a POST: urllib would re-send it as a body-less GET, so a redirect is reported instead
    (and its body is not read whole, as urllib's redirect handling does)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = str(headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _read_bounded(resp: Any, headers: Mapping[str, str], limit: int, *, strict: bool) -> bytes:
    """At most ``limit`` bytes of an answer's body, read in chunks (each under the request's deadline).

    ``strict``: an answer over the limit, or shorter than its Content-Length, is a failure; otherwise the body is
    cut at the limit (enough of an error answer to report it)."""
    declared = _content_length(headers)
    if strict and declared is not None and declared > limit:
        raise _AttemptFailed(
            f"the answer is {declared:,} bytes, over the {limit:,}-byte limit (max_response_bytes)", retry=False
        )
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = resp.read(min(CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        if strict:
            raise _AttemptFailed(f"the answer is over the {limit:,}-byte limit (max_response_bytes)", retry=False)
        return b"".join(chunks)[:limit]
    if strict and declared is not None and total < declared:
        raise _AttemptFailed(
            f"truncated answer: the connection closed after {total:,} of {declared:,} bytes", retry=True
        )
    return b"".join(chunks)


def _describe(err: BaseException, timeout: float) -> str:
    """A short human cause of a transport failure."""
    if isinstance(err, TimeoutError):
        return f"no complete answer within {timeout:g} s"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(err, http.client.BadStatusLine):
        return f"the server's answer is not HTTP ({str(err)[:60]!r})"
    if isinstance(err, http.client.IncompleteRead):
        return "truncated answer"
    if isinstance(err, http.client.LineTooLong):
        return f"the server's answer is not HTTP ({err})"
    if isinstance(err, ConnectionResetError):
        return "the connection was reset"
    return f"{type(err).__name__}: {err}"


def _is_unreachable(reason: object) -> bool:
    """Whether a failure to connect means nothing usable listens there (refused, unknown host, no route, connect
    timeout, TLS handshake or certificate failure)."""
    if isinstance(reason, ConnectionRefusedError | socket.gaierror | TimeoutError | ssl.SSLError):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)


def _kind(value: object) -> str:
    if value is None:
        return "null or missing"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON list"
    return f"a JSON {type(value).__name__}"


def _message_content(text: str) -> str:
    """``choices[0].message.content`` of a chat-completions answer; a failure unless it is a string."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise _AttemptFailed(f"the answer is not JSON: {text[:80]!r}", retry=False) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _AttemptFailed(f"the answer has no 'choices': {text[:80]!r}", retry=False)
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise _AttemptFailed(f"the answer's message content is {_kind(content)}, not text", retry=False)
    return content


# ------------------------------------------------------------------------------------------------------ source
class OpenAICompatSource(LLMSource):
    """Chat completions over HTTP with bounded retries with exponential backoff on 429/5xx and transport
    failures, and at most ``concurrency`` requests in flight. JSON output (``response_format``) is requested
    and dropped for the rest of the run if the server rejects it. The API key is read from the environment
    variable ``api_key_env`` (none is sent if it is unset, as local servers expect).

    Limits: each attempt of a request gets ``timeout`` seconds in total (default 60), connecting, waiting and
    reading included, so a server that trickles its answer is abandoned too; an answer over
    ``max_response_bytes`` (default 1 MiB) is refused without being read whole. A failed attempt (timeout,
    dropped or garbled connection, 429/5xx) is retried up to ``max_retries`` times (default 3), so one label
    costs at most ``(max_retries + 1) * timeout`` seconds plus the backoff. A label whose request still fails,
    or whose answer is not a chat completion with text content, falls back to label-only with a warning; only
    401/403/404 (credentials, model or endpoint: wrong for every label) and a server that cannot be reached
    before it ever answered raise ``SynonymSourceError``. Change the limits with the keyword arguments, or
    ``--timeout`` and ``--retries`` of ``s3 synonyms``.

    Args:
        model: The endpoint's model name.
        base_url: The API root ending in ``/v1``; default ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
        api_key_env: Environment variable holding the API key.
        timeout: Seconds allowed for each attempt of a request, in total.
        max_retries: Further attempts after a failed one (0: no retry).
        backoff: Seconds before the first retry, doubled at each further one (a ``Retry-After`` of up to
            60 s is honoured).
        concurrency: Requests in flight.
        temperature: Sampling temperature.
        max_tokens: Tokens per answer.
        json_mode: Ask for ``response_format`` JSON output.
        max_response_bytes: Largest answer accepted, in bytes.
        **kwargs: ``LLMSource`` options (``max_synonyms``, ``domain``, ``cache``, ``progress``).
    """

    name = "openai-compatible"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 400,
        json_mode: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise SynonymSourceError(
                f"The chat endpoint {self.base_url!r} is not an http:// or https:// URL. Pass --base-url like "
                "http://localhost:8000/v1."
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise SynonymSourceError(
                f"timeout must be a positive number of seconds (--timeout), got {timeout!r}; e.g. 60."
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise SynonymSourceError(
                f"max_retries must be a whole number, 0 or more (--retries), got {max_retries!r}; e.g. 3."
            )
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise SynonymSourceError(
                f"max_response_bytes must be a positive whole number of bytes, got {max_response_bytes!r}."
            )
        if not backoff >= 0:
            raise SynonymSourceError(f"backoff must be 0 or more seconds, got {backoff!r}.")
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.batch_size = 4 * self.concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_response_bytes = max_response_bytes
        self._json_mode = json_mode
        self._lock = threading.Lock()
        self._reached = False  # the server has answered once: from then on, connection failures are per label

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _generate(self, batch: list[Messages]) -> list[str | FailedRequest | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete_or_fail, batch))

    def _complete_or_fail(self, messages: Messages) -> str | FailedRequest:
        try:
            return self._complete(messages)
        except S3Error:
            raise
        except Exception as err:  # whatever goes wrong with one request costs that label, not the run
            logger.debug("Chat request failed unexpectedly.", exc_info=True)
            return FailedRequest(f"unexpected {type(err).__name__}: {err}")

    def _post(self, body: dict[str, Any]) -> tuple[int, str, Mapping[str, str]]:
        """One attempt: ``(status, body text, headers)``, within ``timeout`` seconds and ``max_response_bytes``."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        deadline = time.monotonic() + self.timeout
        opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline), _NoRedirect())
        try:
            try:
                resp: Any = opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as err:
                resp = err  # an answer with an error status: its body says why
            self._reached = True
            with resp:
                status = resp.code
                answer_headers: Mapping[str, str] = resp.headers or {}
                limit = self.max_response_bytes if status == 200 else min(self.max_response_bytes, ERROR_BODY_BYTES)
                data = _read_bounded(resp, answer_headers, limit, strict=status == 200)
        except _AttemptFailed:
            raise
        except urllib.error.URLError as err:  # before any answer: connecting or sending
            reason = err.reason
            if isinstance(reason, TimeoutError):
                cause = f"no connection within {self.timeout:g} s"
            else:
                cause = _describe(reason, self.timeout) if isinstance(reason, BaseException) else str(reason)
            raise _AttemptFailed(cause, retry=True, unreachable=_is_unreachable(reason)) from err
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise _AttemptFailed(_describe(err, self.timeout), retry=True) from err
        return status, data.decode("utf-8", "replace"), answer_headers

    def _complete(self, messages: Messages) -> str | FailedRequest:
        """One chat completion's text, or why it failed once retries are exhausted (the label then falls back)."""
        attempt = 0
        while True:
            body: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
            if self._json_mode:
                body["response_format"] = {"type": "json_object"}
            try:
                status, text, headers = self._post(body)
                if status == 200:
                    return _message_content(text)
            except _AttemptFailed as err:
                if err.unreachable and not self._reached:
                    raise SynonymSourceError(
                        f"Cannot reach the chat endpoint {self.base_url}: {err.reason}. Check --base-url and that "
                        "the server is running."
                    ) from err
                failure = err
            else:
                if status == 400 and self._json_mode and "response_format" in text:
                    with self._lock:
                        self._json_mode = False
                    logger.info(
                        "%s does not support response_format; asking for JSON in the prompt only.", self.base_url
                    )
                    continue
                if status in (401, 403, 404):
                    raise SynonymSourceError(
                        f"The chat endpoint {self.base_url} answered {status}: {text[:200]}. Check the model name "
                        f"({self.model!r}) and the API key in ${self.api_key_env}."
                    )
                where = str(headers.get("Location") or "").removesuffix("/chat/completions")
                detail = f"redirected to {where}; pass that as --base-url" if where and 300 <= status < 400 else ""
                failure = _AttemptFailed(
                    f"the server answered {status}: {detail or text[:200]}",
                    retry=status in RETRY_STATUS,
                    headers=headers,
                )
            if failure.retry and attempt < self.max_retries:
                delay = self.backoff * 2**attempt * (1 + 0.1 * random.random())
                retry_after = str(failure.headers.get("Retry-After") or "").strip()
                if retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
                logger.info("Chat request failed (%s); retrying in %.2fs.", failure.reason, delay)
                time.sleep(delay)
                attempt += 1
                continue
            tries = f" ({attempt + 1} attempts)" if attempt else ""
            return FailedRequest(f"{failure.reason}{tries}")


__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "RETRY_STATUS",
    "OpenAICompatSource",
]
