"""The base of the library's saved artifacts (a synonym space, a few-shot adapter): a folder of JSON files and one
safetensors file, saved atomically, loaded from a folder or the Hub with typed errors, pushed in one commit.

:class:`Artifact` writes ``save_pretrained``, ``from_pretrained`` and ``push_to_hub`` once; a subclass says which
files it holds (class attributes), what it writes (:meth:`Artifact.writers`) and how it reads a folder
(:meth:`Artifact.read`). The module-level helpers (format version, required files, tensor bytes with their hash) are
shared with readers that do not build the artifact, such as ``s3 inspect``. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from s3_hf.errors import ArtifactCorruptError, ArtifactError, ArtifactNotFoundError, FormatVersionError
from s3_hf.io.files import recover_folder, write_artifact
from s3_hf.io.hub import Tracking, download, upload

#: A writer of one of an artifact's files: it is given the path to write.
Writer = Callable[[Path], None]

#: The files s3-hf pushed before pushes recorded them (:data:`~s3_hf.io.hub.MANIFEST_NAME`), with what wrote them:
#: in a repo without a manifest, these are the files a push may replace.
PRE_MANIFEST_FILES = {
    "s3_config.json": "synonym space",
    "synonyms.json": "synonym space",
    "s3_space.safetensors": "synonym space",
    "README.md": "synonym space",
    "ssp_config.json": "few-shot adapter",
    "ssp_state.safetensors": "few-shot adapter",
}


def json_text(data: Any) -> str:
    """``data`` as the artifacts' JSON files hold it: indented, UTF-8 characters kept, a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_bytes(tensors: Mapping[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors serialisation of torch ``tensors`` (made contiguous), hashed with :func:`sha256`."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def check_format_version(found: Any, expected: int, where: str, fix: str) -> None:
    """Raise :class:`FormatVersionError` unless ``found`` (an artifact's recorded format version) is ``expected``.

    Args:
        found: the recorded version.
        expected: the version this release reads.
        where: the file, for the message.
        fix: what to do about it (upgrade, rebuild, refit).
    """
    if found != expected or isinstance(found, bool):
        from s3_hf import __version__

        raise FormatVersionError(
            f"{where} has format_version {found!r}; this s3-hf {__version__} reads version {expected}. {fix}"
        )


def require_files(folder: Path, names: Sequence[str], hint: str) -> None:
    """Raise :class:`ArtifactNotFoundError` naming the first of ``names`` that ``folder`` lacks; ``hint`` follows."""
    for name in names:
        if not (folder / name).is_file():
            raise ArtifactNotFoundError(f"{folder} has no {name}; {hint}")


def read_tensors(
    path: Path, load: Callable[[bytes], dict[str, Any]], expected_sha256: str | None, fix: str
) -> dict[str, Any]:
    """The tensors of a safetensors file, parsed by ``load`` (safetensors' torch or numpy ``load``) and checked
    against ``expected_sha256`` when the artifact recorded one; :class:`ArtifactCorruptError` otherwise.

    Args:
        path: the tensor file.
        load: parses the file's bytes.
        expected_sha256: the content hash recorded when the file was saved (``None``: not recorded).
        fix: what to do about a damaged file (download again, rebuild, refit).
    """
    from safetensors import SafetensorError

    try:
        data = path.read_bytes()
        raw = load(data)
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactCorruptError(
            f"{path} cannot be read as safetensors ({err}); the file is truncated or corrupt. {fix}"
        ) from err
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ArtifactCorruptError(
            f"{path} does not match the content hash recorded with it: the file was changed or damaged after it was "
            f"saved. {fix}"
        )
    return raw


def locate(name_or_path: str | os.PathLike, config_name: str, files: Sequence[str], **hub: Any) -> Path:
    """The local folder of an artifact: ``name_or_path`` itself when it is a folder, else its Hub download.

    Args:
        name_or_path: a local folder or a Hub repo id (``"org/name"``).
        config_name: the artifact's config file, named when ``name_or_path`` is a file.
        files: the files to download (required and optional).
        hub: keyword arguments of :func:`~s3_hf.io.hub.download` (``optional``, ``what``, ``revision``, ...).
    """
    path = Path(name_or_path)
    if path.is_dir() or (str(name_or_path).strip() and recover_folder(path)):
        return path
    if path.exists():
        raise ArtifactNotFoundError(f"{path} is a file; pass the folder that holds {config_name}.")
    return download(str(name_or_path), files, **hub)


class Artifact:
    """A saved artifact: a few files in one folder, written atomically through :func:`~s3_hf.io.files.write_artifact`
    and read back from a folder or a Hub repo.

    Subclasses set the class attributes and implement :meth:`writers` and :meth:`read`.
    """

    #: What the artifact is, in messages ("synonym space").
    what: ClassVar[str]
    #: What a Hub repo should hold, in download errors ("it holds no ..."; default: :attr:`what`).
    hub_what: ClassVar[str | None] = None
    #: Its config file (named when a file is passed for a folder).
    config_name: ClassVar[str]
    #: The files a folder must hold.
    required_files: ClassVar[tuple[str, ...]]
    #: Files downloaded when present (e.g. the model card).
    optional_files: ClassVar[tuple[str, ...]] = ()
    #: Follows "FOLDER has no FILE;" when a required file is missing.
    missing_hint: ClassVar[str]
    #: The commit message of :meth:`push_to_hub`.
    commit_message: ClassVar[str]
    #: The files :meth:`push_to_hub` uploads (``None``: every file written).
    upload_patterns: ClassVar[list[str] | None] = None
    #: The kinds (``what``) of the files of earlier pushes that a push of this artifact replaces: those it does not
    #: write again are deleted in its commit. ``None``: every file s3-hf wrote in the repo (a synonym space: the
    #: few-shot adapter fitted on the space before is stale once the space changes).
    replaces_on_push: ClassVar[tuple[str, ...] | None] = None

    def writers(self, target: Path, repo_id: str | None, overwrite: bool) -> tuple[dict[str, Writer], list[str]]:
        """The artifact's files (name -> writer) and the names of entries of ``target`` not to carry over; raise
        :class:`ArtifactError` for what must not be overwritten."""
        raise NotImplementedError

    @classmethod
    def read(cls, folder: Path) -> Self:
        """The artifact in ``folder``, which holds every required file, validated."""
        raise NotImplementedError

    def save_pretrained(
        self, save_directory: str | os.PathLike, repo_id: str | None = None, *, overwrite: bool = False
    ) -> Path:
        """Write the artifact's files into ``save_directory``, replacing the whole folder in one atomic step: a kill
        or a concurrent save leaves the old artifact or the new one, never a mix.

        Args:
            save_directory: the folder (created if needed). Files in it that the artifact does not own (notes, a
                few-shot adapter beside a space) are carried over unchanged. It cannot be the current working
                folder or a parent of it.
            repo_id: the Hub repo named in the artifact's model card (artifacts with a card).
            overwrite: replace what the artifact would otherwise refuse to (a ``README.md`` that s3-hf did not
                write, a few-shot adapter fitted on another space).
        """
        if not str(save_directory).strip():
            raise ArtifactError(f"The folder to save the {self.what} in is empty (''): name a folder.")
        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise ArtifactError(f"{target} is a file; pass a folder to save the {self.what} in.")
        writers, drop = self.writers(target, repo_id, overwrite)
        try:
            return write_artifact(target, writers, drop=drop)
        except (IsADirectoryError, NotADirectoryError) as err:
            raise ArtifactError(f"Cannot save the {self.what} there: {err}.") from err

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
    ) -> Self:
        """Load the artifact from a local folder or a Hub repo id (``"org/name"``), validating everything.

        Only JSON and safetensors are read: nothing is ever unpickled.

        Args:
            name_or_path: a local folder or a Hub repo id.
            revision: the Hub revision.
            cache_dir: the Hub cache folder.
            local_files_only: use only the Hub cache.
            token: the Hub token.
            force_download: download again even when cached.
        """
        folder = cls.locate(
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        require_files(folder, cls.required_files, cls.missing_hint)
        return cls.read(folder)

    @classmethod
    def locate(cls, name_or_path: str | os.PathLike, **hub: Any) -> Path:
        """The local folder of the artifact (see :func:`locate`); ``hub``: the Hub download's keyword arguments."""
        files = (*cls.required_files, *cls.optional_files)
        return locate(
            name_or_path, cls.config_name, files, optional=cls.optional_files, what=cls.hub_what or cls.what, **hub
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        adapter: Artifact | None = None,
        card: Mapping[str, Any] | None = None,
        files: Mapping[str, str | os.PathLike] | None = None,
    ) -> str:
        """Create ``repo_id`` if needed and upload the artifact's files, with ``adapter``'s, in one commit that also
        deletes the files earlier s3-hf pushes wrote there and this one replaces without carrying them again (a
        synonym space's push replaces everything s3-hf wrote, the few-shot adapter fitted on the space before
        among it; an adapter's push only the adapter's files). Files s3-hf did not write stay. Returns the commit
        URL.

        Args:
            repo_id: ``"org/name"``.
            token: a token with write access (default: ``HF_TOKEN`` or ``hf auth login``).
            private: create the repo private.
            revision: the branch to commit to.
            commit_message: the commit message (default: the artifact's own).
            adapter: an artifact saved beside this one and pushed with it, such as the few-shot adapter fitted on
                a synonym space; it is checked against this artifact first (:meth:`check_beside`).
            card: metadata to set in the pushed model card, by :class:`~huggingface_hub.ModelCardData` attribute
                (``{"license": "mit"}``; ``eval_results``).
            files: more files to push with it (path in the repo -> local file), such as ``.eval_results/*.yaml``.
        """
        parts = [self] if adapter is None else [self, adapter]
        if adapter is not None:
            adapter.check_beside(self)

        def write(tmp: Path, repo: str) -> Path:
            folder = tmp / "artifact"
            for part in parts:
                part.save_pretrained(folder, repo_id=repo)
            for name, source in (files or {}).items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, folder / name)
            if card:
                set_card_metadata(folder / "README.md", card)
            return folder

        return upload(
            repo_id,
            write,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message
            or (self.commit_message if adapter is None else f"{self.commit_message} and its {adapter.what}"),
            allow_patterns=None if adapter is not None or files else self.upload_patterns,
            tracking=tracking(parts),
        )

    def check_beside(self, primary: Artifact) -> None:
        """Raise a typed :class:`ArtifactError` unless this artifact may be saved and pushed beside ``primary``
        (a few-shot adapter beside the synonym space it was fitted on). Default: any pairing is fine."""

    def owned_files(self) -> tuple[str, ...]:
        """The names of the files this artifact writes that are its own (a push records them as its kind)."""
        return (*self.required_files, *self.optional_files)


def set_card_metadata(path: Path, metadata: Mapping[str, Any]) -> None:
    """Set ``metadata`` (by :class:`~huggingface_hub.ModelCardData` attribute) in the model card at ``path``."""
    from huggingface_hub import ModelCard

    if not path.is_file():
        raise ArtifactError(f"There is no model card ({path.name}) to set {sorted(metadata)} in.")
    card = ModelCard.load(path)
    for key, value in metadata.items():
        setattr(card.data, key, value)
    card.save(path)


def tracking(parts: Sequence[Artifact]) -> Tracking:
    """How a push of ``parts`` (the first the main one) records its files and which earlier ones it replaces:
    each file is the kind (``what``) of the last part that owns it, else the first part's; the kinds replaced are
    the parts' :attr:`Artifact.replaces_on_push` (``None`` for any of them: every kind)."""
    owners = {name: part.what for part in parts for name in part.owned_files()}
    replaced = [part.replaces_on_push for part in parts]
    kinds = None if any(r is None for r in replaced) else frozenset(k for r in replaced for k in r or ())
    return Tracking(kind_of=lambda name: owners.get(name, parts[0].what), replaces=kinds, legacy=PRE_MANIFEST_FILES)


__all__ = [
    "PRE_MANIFEST_FILES",
    "Artifact",
    "Writer",
    "check_format_version",
    "json_text",
    "locate",
    "read_tensors",
    "require_files",
    "set_card_metadata",
    "sha256",
    "tensor_bytes",
    "tracking",
]
