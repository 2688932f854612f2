"""What several ``s3`` commands share: reading labels and images, picking and loading the model, the space options a
command passes to the engine, and printing tables. Importing it loads neither torch nor transformers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.errors import CLIUsageError, InvalidLabelsError, TemplateError
from s3_hf.io.files import load_json_text, read_user_text
from s3_hf.options import DEFAULT_MODEL

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine


def load_engine(model: str, device: str = "auto", revision: str | None = None) -> S3Engine:
    """The engine for a Hub id or a local checkpoint folder (a typed, actionable error when it cannot load).

    Args:
        model: a Hub id or a local checkpoint folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda:1"``, ...
        revision: the Hub revision of ``model``.
    """
    from s3_hf.engine.core import S3Engine

    return S3Engine.from_pretrained(model, device=device, revision=revision)


def _recorded_model(args: argparse.Namespace) -> tuple[str | None, str | None, str]:
    """The base model (and revision) the ``--space`` (or the ``--support`` adapter) records, and what recorded it
    ("" when neither is given)."""
    if getattr(args, "space", None):
        from s3_hf.space.files import locate, read_config

        config = read_config(locate(args.space))  # the config alone, checked as loading checks it: no torch
        return config.base_model, config.base_model_revision, f"The space {args.space}"
    if getattr(args, "support", None):
        from s3_hf.fewshot import SSP_CONFIG_NAME, SSPAdapter

        if (Path(args.support) / SSP_CONFIG_NAME).is_file():
            return SSPAdapter.from_pretrained(args.support).info.base_model, None, f"The adapter {args.support}"
    return None, None, ""


def model_choice(args: argparse.Namespace) -> tuple[str, str | None]:
    """The model (and Hub revision) to load: ``--model``, else the base model the ``--space`` (or the ``--support``
    adapter) was built with, else the default model."""
    if args.model:
        return args.model, None
    base, revision, source = _recorded_model(args)
    if not source:
        return DEFAULT_MODEL, None
    from s3_hf.errors import ModelLoadError
    from s3_hf.models.loading import LOCAL_PREFIX, is_local_model

    if not base or base == "unknown":
        raise CLIUsageError(f"{source} does not record the model it was built with: pass --model.")
    if is_local_model(base):
        if not Path(base.removeprefix(LOCAL_PREFIX)).is_dir():
            raise ModelLoadError(
                f"{source} was built with the local model {base}, which is not on this machine: pass --model with "
                "that checkpoint (or a copy of it)."
            )
        return base, None
    return base, revision


def engine_for(args: argparse.Namespace) -> S3Engine:
    """The engine of a command: the model :func:`model_choice` picks (``args.model`` is set to it, for what the
    command records and prints) on ``--device``."""
    args.model, revision = model_choice(args)
    return load_engine(args.model, args.device, revision)


def _is(path: Path, kind: str) -> bool:
    """``path.is_file()``/``is_dir()``, false for a string that cannot name a file (too long, NUL bytes)."""
    try:
        return getattr(path, kind)()
    except (OSError, ValueError):
        return False


def _read_stdin(what: str) -> str:
    """Standard input as UTF-8 text (``-`` for a file argument)."""
    try:
        return sys.stdin.buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidLabelsError(f"{what} on standard input are not UTF-8 text ({err.reason}): send UTF-8.") from err


_JSON_LABELS = 'Pass a JSON list of strings, such as ["cat", "dog"], or one label per line in a .txt file.'


def _json_labels(text: str, path: Path) -> list[str]:
    labels = load_json_text(text, InvalidLabelsError, f"labels file {path}", _JSON_LABELS)
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        bad = labels if not isinstance(labels, list) else next(x for x in labels if not isinstance(x, str))
        raise InvalidLabelsError(
            f'Labels file {path} must hold a JSON list of strings, such as ["cat", "dog"]; it holds '
            f"{json.dumps(bad)[:80]}. Quote every label."
        )
    return labels


def read_labels(value: str) -> list[str]:
    """Labels from a file (one per line, or a JSON list of strings) or a comma-separated string, normalised as
    :func:`~s3_hf.space.build.check_labels` compares them (which still checks them).

    Args:
        value: a file path, ``-`` (standard input) or comma-separated labels.
    """
    from s3_hf.synonyms.base import normalise

    path = Path(value)
    if value == "-" or _is(path, "is_file") or (_is(path, "exists") and not _is(path, "is_dir")):  # -, pipes too
        text = _read_stdin("Labels") if value == "-" else read_user_text(path, InvalidLabelsError, "Labels file")
        if path.suffix.lower() == ".json":
            return [normalise(x) for x in _json_labels(text, path)]
        lines = (normalise(line) for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    if _is(path, "is_dir"):
        raise InvalidLabelsError(f"Labels file {value} is a folder: pass a file with one label per line.")
    if os.sep in value or value.endswith((".txt", ".json")):
        raise InvalidLabelsError(f"Labels file {value} does not exist.")
    return [normalise(x) for x in value.split(",") if normalise(x)]


def read_label_table(value: str) -> tuple[list[str], list[str] | None]:
    """Labels plus, when given, their WordNet ids. A ``.tsv``/``.csv`` file with a header takes labels from
    its ``label``, ``clip_name`` or ``name`` column and ids from a ``wnid`` column; anything else goes through
    :func:`read_labels`.

    Args:
        value: a table file, or anything :func:`read_labels` reads.
    """
    path = Path(value)
    if not (_is(path, "is_file") and path.suffix.lower() in (".tsv", ".csv")):
        return read_labels(value), None
    import csv
    import io

    from s3_hf.synonyms.base import normalise

    text = read_user_text(path, InvalidLabelsError, "Labels table")
    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except csv.Error as err:
        raise InvalidLabelsError(f"Labels table {path} is not a readable table ({err}): fix it.") from err
    columns = rows[0].keys() if rows else []
    col = next((c for c in ("label", "clip_name", "name", "class") if c in columns), None)
    if col is None:
        raise InvalidLabelsError(f"{path} needs a header with a 'label', 'clip_name' or 'name' column.")
    short = next((i for i, r in enumerate(rows) if not isinstance(r[col], str)), None)
    if short is not None:
        raise InvalidLabelsError(f"Row {short + 2} of {path} has no {col!r} value: fill it in or remove the row.")
    ids = [(r["wnid"] or "").strip() for r in rows] if "wnid" in columns else None
    return [normalise(r[col]) for r in rows], ids


def templates(value: str | None) -> Any:
    """``--templates``: a file's templates (one a line), else the value itself (a template or a set name)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        text = read_user_text(path, TemplateError, "Templates file")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return value


def space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine's space options from :func:`~s3_hf.cli.arguments.space_args`: a saved space, or labels."""
    if (args.space is None) == (args.labels is None):
        raise CLIUsageError("Pass exactly one of --space (an artifact folder or Hub id) or --labels.")
    if args.space is not None:
        return {"synonym_space": args.space}
    return {
        "candidate_labels": read_labels(args.labels),
        "synonyms": args.synonyms,
        "templates": templates(args.templates),
    }


def images(paths: list[str]) -> list[str]:
    """Image files, URLs and the images directly inside folders, in the order given."""
    from s3_hf.io.images import list_images

    out: list[str] = []
    for p in paths:
        if Path(p).is_dir():
            found = list_images(p)
            if not found:
                raise CLIUsageError(f"No images in {p} (looked for .jpg, .png, .webp, ... files directly inside it).")
            out.extend(found)
        else:
            out.append(p)
    return out


def int_list(text: str | None, flag: str, minimum: int = 0) -> list[int]:
    """A comma-separated list of integers >= ``minimum`` given with ``flag`` (empty: none)."""
    try:
        values = [int(x) for x in (text or "").split(",") if x.strip()]
    except ValueError as err:
        raise CLIUsageError(f"{flag} takes comma-separated integers, got {text!r}.") from err
    if any(v < minimum for v in values):
        raise CLIUsageError(f"{flag} values must be at least {minimum}, got {text!r}.")
    return values


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``rows`` as left-aligned text columns under a header."""
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))


def load_eval_module(name: str) -> Any:
    """``s3_hf.evaluation.<name>`` (``bench``, ``registry``, ``report``, ``runner``), imported only by the commands
    that are its faces.

    Args:
        name: the module's name inside :mod:`s3_hf.evaluation`.
    """
    import importlib

    from s3_hf.errors import EvalError

    try:
        return importlib.import_module(f"s3_hf.evaluation.{name}")
    except ModuleNotFoundError as err:
        if err.name not in ("s3_hf.evaluation", f"s3_hf.evaluation.{name}"):
            raise
        raise EvalError(
            f"s3_hf.evaluation.{name} is missing from this installation of s3-hf: reinstall it (pip install s3-hf)."
        ) from err
