"""Talking to the Hugging Face Hub: the one download and the one upload path of spaces, adapters and Spaces.

Errors become typed :class:`~s3_hf.errors.S3Error` subclasses that say what to do (log in, check the name, go
online or pass a local folder).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from s3_hf.errors import ArtifactNotFoundError, HubError, SpaceTooLargeError


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
) -> str:
    """Create ``repo_id`` if needed, ``write(tmp_dir, repo_id)`` the files into a temporary folder and upload that
    folder (only ``allow_patterns`` when given) in one commit; returns the commit URL.

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
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                revision=revision,
                commit_message=commit_message,
                allow_patterns=allow_patterns,
                repo_type=repo_type,
            )
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as err:
        raise HubError(
            f"Could not push to {repo_id!r}: {err}. Check your network, that HF_HUB_OFFLINE is not set, "
            "and that your token has write access to that namespace."
        ) from err
    return str(getattr(info, "commit_url", info))


__all__ = [
    "download",
    "is_repo_id",
    "upload",
]
