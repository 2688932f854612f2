"""Synonyms from any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, TGI, llama.cpp, Ollama, ...)."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import SynonymSourceError
from .llm import LLMSource, Messages

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAICompatSource(LLMSource):
    """Chat completions over HTTP with timeouts, bounded retries with exponential backoff on 429/5xx and
    timeouts, and at most ``concurrency`` requests in flight. JSON output (``response_format``) is requested
    and dropped for the rest of the run if the server rejects it. The API key is read from the environment
    variable ``api_key_env`` (none is sent if it is unset, as local servers expect)."""

    name = "openai-compatible"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 400,
        json_mode: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.batch_size = 4 * self.concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._json_mode = json_mode
        self._lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _generate(self, batch: list[Messages]) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, batch))

    def _post(self, body: dict[str, Any]) -> tuple[int, str, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace"), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace"), dict(err.headers or {})

    def _complete(self, messages: Messages) -> str | None:
        """One chat completion; ``None`` once retries are exhausted (the label then falls back)."""
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
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, ConnectionRefusedError | socket.gaierror):
                    raise SynonymSourceError(
                        f"Cannot reach the chat endpoint {self.base_url}: {reason}. Check --base-url and that the "
                        "server is running."
                    ) from err
                status, text, headers = -1, str(err), {}
            if status == 200:
                try:
                    return json.loads(text)["choices"][0]["message"]["content"] or ""
                except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                    return text  # not the OpenAI schema: hand the raw body to the parser
            if status == 400 and self._json_mode and "response_format" in text:
                with self._lock:
                    self._json_mode = False
                logger.info("%s does not support response_format; asking for JSON in the prompt only.", self.base_url)
                continue
            if status in (401, 403, 404):
                raise SynonymSourceError(
                    f"The chat endpoint {self.base_url} answered {status}: {text[:200]}. Check the model name "
                    f"({self.model!r}) and the API key in ${self.api_key_env}."
                )
            if (status == -1 or status in RETRY_STATUS) and attempt < self.max_retries:
                delay = self.backoff * 2**attempt * (1 + 0.1 * random.random())
                retry_after = headers.get("Retry-After") or headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, min(float(retry_after), 60.0))
                logger.info("Request failed (%s); retrying in %.2fs.", status if status > 0 else text, delay)
                time.sleep(delay)
                attempt += 1
                continue
            logger.warning("Chat request failed after %d attempts: %s %s", attempt + 1, status, text[:200])
            return None

__all__ = [
    "RETRY_STATUS",
    "OpenAICompatSource",
]
