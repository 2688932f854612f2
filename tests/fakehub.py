"""An in-process fake of the Hub's file-download endpoints, plugged into huggingface_hub's HTTP client."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.utils._http import default_client_factory

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class FakeHub:
    """Serves ``{repo_id: {filename: bytes}}`` at ``/{repo}/resolve/{revision}/{file}``; logs every request."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, request.url.path))
        m = _RESOLVE.match(request.url.path)
        if not m:
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=request)
        repo = self.repos.get(m["repo"])
        if repo is None:
            return httpx2.Response(
                401,
                headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                request=request,
            )
        if m["rev"] not in ("main", COMMIT):
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, request=request)
        data = repo.get(m["file"])
        if data is None:
            return httpx2.Response(
                404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, request=request
            )
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Content-Length": str(len(data)),
        }
        body = b"" if request.method == "HEAD" else data
        return httpx2.Response(200, headers=headers, content=body, request=request)


@contextmanager
def fake_hub(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """Route huggingface_hub's HTTP traffic to a :class:`FakeHub`; offline mode is switched off meanwhile."""
    hub = FakeHub(repos)
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle)))
    try:
        yield hub
    finally:
        constants.HF_HUB_OFFLINE = offline
        huggingface_hub.set_client_factory(default_client_factory)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
