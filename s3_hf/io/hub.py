"""Talking to the Hugging Face Hub: the one download and the one upload path of spaces, adapters and Spaces.

Errors become typed :class:`~s3_hf.errors.S3Error` subclasses that say what to do (log in, check the name, go
online or pass a local folder).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.errors import ArtifactNotFoundError, HubError, SpaceTooLargeError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


def is_repo_id(text: str) -> bool:
    """Whether ``text`` is a Hub repo id with an owner (``org/name``), by huggingface_hub's own rules."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if text.count("/") != 1:  # huggingface_hub also accepts bare legacy names ("gpt2"); ours have an owner
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def download(
    repo_id: str,
    names: Sequence[str],
    *,
    optional: Sequence[str] = (),
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
    repo_type: str | None = None,
    what: str = "an s3-hf synonym space",
    max_bytes: int | None = None,
) -> Path:
    """Download ``names`` of a Hub repo into the local cache and return the snapshot folder.

    Args:
        repo_id: ``"org/name"``.
        names: the files to fetch; ``optional`` ones may be missing from the repo.
        revision: branch, tag or commit (default ``main``).
        cache_dir: the Hub cache (default ``HF_HUB_CACHE``).
        local_files_only: use only what the cache holds.
        token: a Hub token for private repos.
        force_download: fetch again even if cached.
        repo_type: ``None`` (a model repo), ``"dataset"`` or ``"space"``.
        what: what the repo should hold, for error messages.
        max_bytes: refuse (:class:`~s3_hf.errors.SpaceTooLargeError`) when the files' sizes, read from the Hub
            before anything is downloaded, add up to more; ``None``: no bound.
    """
    from huggingface_hub import hf_hub_download

    def fetch(name: str) -> str:
        return hf_hub_download(
            repo_id,
            name,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
            repo_type=repo_type,
        )

    if max_bytes is not None and not local_files_only:
        _check_total_size(repo_id, names, optional, revision, repo_type, token, max_bytes, what)
    files: list[str] = []
    for name in names:
        try:
            files.append(fetch(name))
        except _hub_errors() as err:
            _fail_unless_optional(err, repo_id, revision, name, what, optional)
    return Path(files[0]).parent


def _check_total_size(
    repo_id: str,
    names: Sequence[str],
    optional: Sequence[str],
    revision: str | None,
    repo_type: str | None,
    token: str | bool | None,
    max_bytes: int,
    what: str,
) -> None:
    """Ask the Hub for every file's size first (HEAD requests), so that an oversized repo costs no download."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    total = 0
    for name in names:
        try:
            url = hf_hub_url(repo_id, name, revision=revision, repo_type=repo_type)
            total += int(get_hf_file_metadata(url, token=token).size or 0)
        except _hub_errors() as err:
            _fail_unless_optional(err, repo_id, revision, name, what, optional)  # a missing optional file has no size
        if total > max_bytes:
            raise SpaceTooLargeError(
                f"Hub repo {repo_id!r}'s files take more than {max_bytes / 2**20:,.1f} MB, the most read "
                f"here; nothing was downloaded. Use a smaller {what}, or raise the limit."
            )


def _hub_errors() -> tuple[type[Exception], ...]:
    """The errors huggingface_hub raises for a download (its HTTP errors included), and the OS's."""
    from huggingface_hub import errors

    return (
        errors.HFValidationError,
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
        errors.LocalEntryNotFoundError,
        errors.OfflineModeIsEnabled,
        errors.EntryNotFoundError,
        errors.HfHubHTTPError,
        OSError,
    )


def _fail_unless_optional(
    err: Exception, repo_id: str, revision: str | None, name: str, what: str, optional: Sequence[str]
) -> None:
    """Raise the typed error of a failed download of ``name`` (:func:`_download_failure`), unless ``name`` is an
    optional file the repo does not have."""
    failure = _download_failure(err, repo_id, revision, name, what)
    if failure is None and name in optional:
        return
    raise failure or ArtifactNotFoundError(f"Hub repo {repo_id!r} has no {name}: it holds no {what}.") from err


def _download_failure(
    err: Exception, repo_id: str, revision: str | None, name: str, what: str
) -> ArtifactNotFoundError | HubError | None:
    """The typed error a failed download of ``name`` becomes, saying what to do; ``None`` when the repo is there
    but has no such file (the caller decides: an optional file may be missing)."""
    from huggingface_hub import errors

    if isinstance(err, errors.HFValidationError):
        return ArtifactNotFoundError(
            f"{repo_id!r} is neither an existing local folder nor a valid Hub repo id ('org/name')."
        )
    if isinstance(err, errors.RepositoryNotFoundError | errors.RevisionNotFoundError):
        return ArtifactNotFoundError(
            f"Hub repo {repo_id!r} (revision {revision or 'main'}) was not found or is private. Check the "
            "name, or log in with `hf auth login` for private repos."
        )
    if isinstance(err, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        return ArtifactNotFoundError(
            f"{repo_id!r} is not a local folder and its {name} is not in the Hub cache, and the Hub cannot "
            "be reached (offline or HF_HUB_OFFLINE=1). Download it once with network access, or pass a "
            "local folder written by `s3 build`."
        )
    if isinstance(err, errors.EntryNotFoundError):  # after LocalEntryNotFoundError, its subclass
        return None
    return HubError(f"Downloading {name} from {repo_id!r} failed: {err}. Check your network.")


#: The file in which a push records which of a repo's files s3-hf wrote, and what wrote each (its kind).
MANIFEST_NAME = "s3_manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Tracking:
    """How a push records the files it writes, so that a later push deletes those it no longer writes and never a
    file s3-hf did not write.

    Attributes:
        kind_of: what wrote a pushed file, by its path in the repo (``"synonym space"``, ``"few-shot adapter"``).
        replaces: the kinds of the files of earlier pushes that this push replaces: each such file the push does not
            carry again is deleted in its commit. ``None``: every kind.
        legacy: the files, with their kinds, that releases before :data:`MANIFEST_NAME` pushed: in a repo without a
            manifest, these names are the files s3-hf wrote.
    """

    kind_of: Callable[[str], str]
    replaces: frozenset[str] | None = None
    legacy: Mapping[str, str] = field(default_factory=dict)

    def plan(self, pushed: Sequence[str], earlier: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """The files to delete and the new manifest (path -> kind), given the files of this push and those earlier
        pushes wrote that the repo still holds (path -> kind)."""
        stale = sorted(
            name
            for name, kind in earlier.items()
            if name not in pushed and (self.replaces is None or kind in self.replaces)
        )
        manifest = {name: kind for name, kind in earlier.items() if name not in stale}
        manifest.update({name: self.kind_of(name) for name in pushed})
        return stale, dict(sorted(manifest.items()))


def manifest_text(files: Mapping[str, str]) -> str:
    """The JSON text of :data:`MANIFEST_NAME` for ``files`` (path -> kind)."""
    data = {"format_version": MANIFEST_VERSION, "library_name": "s3-hf", "files": dict(files)}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def read_manifest(text: str) -> dict[str, str] | None:
    """The files (path -> kind) a :data:`MANIFEST_NAME` records; ``None`` when it is not one this release reads."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("format_version") == MANIFEST_VERSION else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    return files


def upload(
    repo_id: str,
    write: Callable[[Path, str], Path],
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str,
    allow_patterns: list[str] | None = None,
    repo_type: str | None = None,
    space_sdk: str | None = None,
    tracking: Tracking | None = None,
) -> str:
    """Create ``repo_id`` if needed, ``write(tmp_dir, repo_id)`` the files into a temporary folder and push that
    folder (only ``allow_patterns`` when given) in one commit; returns the commit URL.

    With ``tracking``, the same commit records the files in :data:`MANIFEST_NAME` and deletes the files earlier
    pushes wrote that this one replaces and does not carry again (see :class:`Tracking`); other files of the repo
    (a user's own) are left alone.

    Args:
        repo_id: ``"org/name"``.
        write: writes the files and returns the folder to upload.
        token: a token with write access (default: ``HF_TOKEN`` or ``hf auth login``).
        private: create the repo private.
        revision: the branch to commit to.
        commit_message: the commit message.
        allow_patterns: upload only matching files.
        repo_type: ``None`` (a model repo) or ``"space"``.
        space_sdk: the SDK of a new Space (``"gradio"``).
        tracking: record the files written and delete stale ones (``None``: add files only).
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if token is None and get_token() is None:
        raise HubError(
            "No Hugging Face token found. Run `hf auth login`, set the HF_TOKEN environment variable, "
            "or pass token=... (a token with write access)."
        )
    api = HfApi(token=token)
    try:
        created = api.create_repo(
            repo_id=repo_id, private=private, exist_ok=True, repo_type=repo_type, space_sdk=space_sdk
        )
        repo_id = created.repo_id
        with tempfile.TemporaryDirectory() as tmp:
            folder = write(Path(tmp), repo_id)
            where = _Where(api, repo_id, revision, repo_type)
            info = _commit(where, folder, allow_patterns, commit_message, tracking, Path(tmp) / ".earlier")
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as err:
        raise HubError(
            f"Could not push to {repo_id!r}: {err}. Check your network, that HF_HUB_OFFLINE is not set, "
            "and that your token has write access to that namespace."
        ) from err
    return str(getattr(info, "commit_url", info))


@dataclass(frozen=True)
class _Where:
    """A repo's branch, through a client."""

    api: HfApi
    repo_id: str
    revision: str | None
    repo_type: str | None


def _commit(
    where: _Where,
    folder: Path,
    allow_patterns: list[str] | None,
    commit_message: str,
    tracking: Tracking | None,
    scratch: Path,
) -> Any:
    """One commit adding the files of ``folder`` and, with ``tracking``, the manifest, deleting stale files."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    pushed = [
        n
        for n in filter_repo_objects(names, allow_patterns=allow_patterns, ignore_patterns=DEFAULT_IGNORE_PATTERNS)
        if tracking is None or n != MANIFEST_NAME  # the manifest is written afresh below
    ]
    operations: list[Any] = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=folder / n) for n in pushed]
    if tracking is not None:
        stale, manifest = tracking.plan(pushed, _earlier_files(where, tracking, scratch))
        operations.append(
            CommitOperationAdd(path_in_repo=MANIFEST_NAME, path_or_fileobj=manifest_text(manifest).encode())
        )
        operations += [CommitOperationDelete(path_in_repo=n) for n in stale]
    return where.api.create_commit(
        where.repo_id,
        operations,
        commit_message=commit_message,
        revision=where.revision,
        repo_type=where.repo_type,
    )


def _earlier_files(where: _Where, tracking: Tracking, scratch: Path) -> dict[str, str]:
    """The files (path -> kind) that earlier pushes wrote and the repo still holds: as its manifest records them,
    else (a repo pushed before manifests, or a manifest this release cannot read) the legacy names it holds."""
    remote = set(where.api.list_repo_files(where.repo_id, revision=where.revision, repo_type=where.repo_type))
    files = None
    if MANIFEST_NAME in remote:
        path = where.api.hf_hub_download(
            where.repo_id, MANIFEST_NAME, revision=where.revision, repo_type=where.repo_type, local_dir=scratch
        )
        files = read_manifest(Path(path).read_text(encoding="utf-8", errors="replace"))
        if files is None:
            logger.warning(
                "%s's %s is not a manifest this s3-hf reads; only the files earlier releases wrote are replaced.",
                where.repo_id,
                MANIFEST_NAME,
            )
    if files is None:
        files = dict(tracking.legacy)
    return {name: kind for name, kind in files.items() if name in remote and name != MANIFEST_NAME}


__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "Tracking",
    "download",
    "is_repo_id",
    "manifest_text",
    "read_manifest",
    "upload",
]
