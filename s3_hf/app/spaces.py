"""Synonym spaces the app loads for a request: Hub downloads within the app's size bound, and the user-facing
message of every failure (no server paths: the library's messages name cache folders; the log keeps them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from s3_hf.app.inputs import FAILED, SpaceChoice, image_too_large
from s3_hf.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    FormatVersionError,
    HubError,
    ImageTooLargeError,
    ModelMismatchError,
    S3Error,
    SpaceTooLargeError,
)
from s3_hf.io.hub import download
from s3_hf.space.artifact import CONFIG_NAME, REQUIRED_FILES

logger = logging.getLogger("s3_hf.space_app")


class HubSpaces:
    """Hub synonym spaces, each downloaded once and only when its files fit ``max_bytes``.

    Args:
        max_bytes: the largest total size of a space's files.
        keep: how many repo ids to remember before the memory of downloads starts over.
    """

    def __init__(self, max_bytes: int, keep: int = 64) -> None:
        self.max_bytes = max_bytes
        self.keep = keep
        self._folders: dict[str, Path] = {}
        self._lock = threading.Lock()

    def folder(self, repo_id: str) -> str:
        """Download a Hub space (once) and return its snapshot folder. The space is never looked up as a local
        path, so a repo id that happens to name a folder next to the app reads nothing from it."""
        with self._lock:
            folder = self._folders.get(repo_id)
        if folder is None or not (folder / CONFIG_NAME).is_file():
            # sizes are asked for before anything is downloaded, and checked again on disk (read whole when loaded)
            folder = download(repo_id, REQUIRED_FILES, max_bytes=self.max_bytes)
            size = sum((folder / name).stat().st_size for name in REQUIRED_FILES)
            if size > self.max_bytes:
                raise SpaceTooLargeError(
                    f"{repo_id}'s files take {size / 2**20:.0f} MB; this app reads {self.max_bytes / 2**20:g}."
                )
            with self._lock:
                if len(self._folders) >= self.keep:
                    self._folders.clear()
                self._folders[repo_id] = folder
        return str(folder)


def space_error(choice: SpaceChoice, err: Exception) -> str:
    """The user-facing message for a space that could not be loaded: no server paths (the library's messages
    name cache folders); the details go to the log."""
    logger.warning("Loading synonym space %r failed: %s", choice.location, err)
    if isinstance(err, ArtifactNotFoundError) and choice.hub:
        return (
            f"{choice.typed!r} is not a local folder this Space allows, and no synonym space could be downloaded "
            "from the Hub under that repo id (it does not exist, is private or holds no s3-hf synonym space, or the "
            "Hub cannot be reached). Check the repo id."
        )
    if isinstance(err, SpaceTooLargeError):
        reason = "it is larger than this Space accepts (too many classes or concepts per class)"
    elif isinstance(err, ModelMismatchError):
        reason = "it was built for another CLIP model than the one this Space runs"
    elif isinstance(err, FormatVersionError):
        reason = "it was saved in a format this version of s3-hf cannot read"
    elif isinstance(err, HubError):
        reason = "the Hub could not be reached; try again later"
    elif isinstance(err, ArtifactNotFoundError):
        reason = "its files are missing"
    else:
        reason = "its files are damaged or do not hold a valid s3-hf synonym space"
    return f"The synonym space {choice.typed!r} could not be loaded: {reason}."


@contextmanager
def user_errors(choice: SpaceChoice | None, what: str) -> Iterator[None]:
    """Turn every failure of a request into a ``gr.Error`` that names no server path and shows no stack trace (the
    log keeps them): the space's own message for a space that cannot be had, the library's for bad options."""
    try:
        yield
    except ImageTooLargeError as err:  # the working size of segmentation
        raise gr.Error(image_too_large()) from err
    except (ArtifactError, HubError) as err:
        if choice is None:
            logger.exception("%s failed", what)
            raise gr.Error(FAILED) from err
        raise gr.Error(space_error(choice, err)) from err
    except S3Error as err:  # labels, synonyms, options: the library's messages name no server paths
        raise gr.Error(str(err)) from err
    except Exception as err:
        logger.exception("%s failed", what)
        raise gr.Error(FAILED) from err


__all__ = ["HubSpaces", "space_error", "user_errors"]
