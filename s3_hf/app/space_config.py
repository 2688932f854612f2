"""What a Space folder says about itself: the README's front matter (the Spaces configuration: models preloaded at
build time, the short description, ZeroGPU as suggested hardware) and the defaults its ``app.py`` starts with.

``preload_from_hub`` entries are whole repos at their main branch: the Spaces builder downloads them into the
default Hub cache (``~/.cache/huggingface/hub``) while it builds the image, so a cold start reads the CLIP weights
from disk instead of downloading them. Whole repos, because which weight file transformers picks (safetensors, or
``pytorch_model.bin`` where a repo has no safetensors) depends on the repo, and a listed file the repo lacks would
fail the build; revisions are not pinned because the app loads the model's main branch. Private repos cannot be
preloaded (the Space then downloads them at start-up with its token).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from s3_hf.errors import S3Error, SpaceBuildError
from s3_hf.io.hub import is_repo_id
from s3_hf.options import DEFAULT_MODEL

#: ``suggested_hardware`` of a Space built with ``--zero-gpu`` (huggingface_hub's ``SpaceHardware.ZERO_A10G``).
ZERO_GPU_HARDWARE = "zero-a10g"
#: The package that provides ``spaces.GPU``; listed in the requirements of ZeroGPU builds only.
SPACES_PACKAGE = "spaces"
SHORT_DESCRIPTION_MAX = 60  # the Hub refuses longer ones
OPEN_CLIP_PREFIX = "hf-hub:"
#: The line of the template's ``app.py`` that :func:`app_text` fills in.
DEFAULTS_LINE = "DEFAULTS: dict[str, str] = {}"


@dataclass(frozen=True)
class SpaceTarget:
    """What a Space is built for. ``model``: the CLIP model it serves (``None``: the app's default); ``space``: the
    Hub synonym space it opens with (``None``: none); ``zero_gpu``: request ZeroGPU hardware."""

    model: str | None = None
    space: str | None = None
    zero_gpu: bool = False

    def served_model(self) -> str:
        """The model the Space loads."""
        return self.model or DEFAULT_MODEL

    def app_defaults(self) -> dict[str, str]:
        """The environment the app starts with unless the Space's variables say otherwise."""
        out = {"S3_MODEL": self.model} if self.model else {}
        return {**out, "S3_SPACE": self.space} if self.space else out

    def hub_repos(self) -> list[str]:
        """The Hub repos the Space reads at start-up: the model's (an open_clip ``hf-hub:`` id names one) and the
        synonym space's."""
        repos = [self.served_model().removeprefix(OPEN_CLIP_PREFIX)]
        return [*repos, self.space] if self.space else repos


def check_repo(value: str, what: str, flag: str) -> str:
    """``value`` stripped when it is a Hub repo id ``org/name``; :class:`SpaceBuildError` otherwise (a local folder
    is not part of the Space, so the Space could not load it)."""
    value = value.strip()
    if not is_repo_id(value.removeprefix(OPEN_CLIP_PREFIX)):
        raise SpaceBuildError(
            f"{flag} {value!r} is not a Hub repo id (org/name): the Space downloads its {what} from the Hub, and "
            f"a local folder is not part of it. Push the {what} to the Hub first."
        )
    return value


def space_base_model(space: str, *, token: str | bool | None = None) -> str:
    """The base model a Hub synonym space was built with, from its ``s3_config.json`` (one small download).

    Args:
        space: the synonym space's repo id.
        token: a Hub token for a private repo.
    """
    from s3_hf.io.hub import download
    from s3_hf.space.artifact import CONFIG_NAME
    from s3_hf.space.files import S3Config

    try:
        folder = download(space, [CONFIG_NAME], token=token)
        config = S3Config.from_dict(json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")))
    except (S3Error, OSError, ValueError) as err:
        raise SpaceBuildError(
            f"The base model of the synonym space {space!r} could not be read ({err}). Pass the model the Space "
            "should serve with --model."
        ) from err
    return check_repo(config.base_model, "model", f"The synonym space {space!r} was built with the model")


def resolve_target(
    model: str | None = None, space: str | None = None, *, zero_gpu: bool = False, token: str | bool | None = None
) -> SpaceTarget:
    """The Space's target from ``s3 space build``'s flags: a synonym space without ``--model`` serves the model the
    space was built with (read from the Hub).

    Args:
        model: ``--model``, a Hub id (an open_clip ``hf-hub:`` id too).
        space: ``--space``, a Hub synonym space's repo id.
        zero_gpu: ``--zero-gpu``.
        token: a Hub token to read a private synonym space.
    """
    model = check_repo(model, "model", "--model") if model else None
    space = check_repo(space, "synonym space", "--space") if space else None
    if space and not model:
        model = space_base_model(space, token=token)
    return SpaceTarget(model=model, space=space, zero_gpu=zero_gpu)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A README's YAML front matter (parsed) and its body."""
    if not text.startswith("---\n"):
        raise SpaceBuildError("The Space template's README.md has no YAML front matter: reinstall s3-hf.")
    front, sep, body = text[4:].partition("\n---\n")
    data = yaml.safe_load(front) if sep else None
    if not isinstance(data, dict):
        raise SpaceBuildError("The Space template's README.md front matter is not a YAML mapping: reinstall s3-hf.")
    return data, body


def readme_text(template: str, target: SpaceTarget) -> str:
    """The Space's ``README.md``: the template with the front matter filled for ``target``."""
    data, body = split_front_matter(template)
    repos = target.hub_repos()
    data["models"] = list(repos)
    data["preload_from_hub"] = list(repos)  # two lists: one list twice would be written as a YAML alias
    if target.zero_gpu:
        data["suggested_hardware"] = ZERO_GPU_HARDWARE
    if len(str(data.get("short_description", ""))) > SHORT_DESCRIPTION_MAX:
        raise SpaceBuildError(f"The Space's short_description is over {SHORT_DESCRIPTION_MAX} characters.")
    front = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n{body}"


def app_text(template: str, target: SpaceTarget) -> str:
    """The Space's ``app.py``: the template with its defaults line filled for ``target`` (unchanged without any)."""
    if DEFAULTS_LINE not in template:
        raise SpaceBuildError(f"The Space template's app.py lacks the line {DEFAULTS_LINE!r}: reinstall s3-hf.")
    defaults = target.app_defaults()
    if not defaults:
        return template
    return template.replace(DEFAULTS_LINE, f"DEFAULTS: dict[str, str] = {json.dumps(defaults, indent=4)}")


__all__ = [
    "SPACES_PACKAGE",
    "ZERO_GPU_HARDWARE",
    "SpaceTarget",
    "app_text",
    "check_repo",
    "readme_text",
    "resolve_target",
    "space_base_model",
    "split_front_matter",
]
