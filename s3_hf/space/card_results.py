"""Evaluation results in a space's model card: the legacy ``model-index`` in ``README.md`` and huggingface_hub 2.x's
``.eval_results/*.yaml`` files, with the Hub dataset id (and revision) of each benchmark read from the Hub; and what a
push carries over from a saved folder's card (its license and results), which a fresh render would lose."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3_hf.errors import ArtifactError
from s3_hf.io.files import write_text
from s3_hf.space.card import is_s3_card

CARD_NAME = "README.md"
#: The folder huggingface_hub 2.x and the Hub read evaluation results from (huggingface_hub's
#: ``constants.EVAL_RESULTS_FOLDER``).
EVAL_RESULTS_FOLDER = ".eval_results"
#: The task of every entry: zero-shot classification, named as CLIP_benchmark (whose Hub copies the registry's
#: benchmarks are) names it.
TASK_ID = "zeroshot_classification"
#: The first line of the ``.eval_results`` files s3-hf writes: the files it replaces are those that start with it.
HEADER = "# Written by s3-hf (`s3 card`): top-1 accuracy of this synonym space."


@dataclass(frozen=True)
class CardResult:
    """One accuracy a model card reports: a method's top-1 accuracy on a benchmark.

    ``dataset_id`` and ``dataset_revision`` name the Hub dataset the benchmark was read from (``None``: a local
    folder), ``split`` its split. ``own`` marks the space's own method: only its results go to ``.eval_results``,
    which the Hub shows as this repo's scores (a baseline such as the label-only prompt is the base model's).
    """

    benchmark: str
    method: str
    top1: float
    dataset_id: str | None = None
    dataset_revision: str | None = None
    split: str | None = None
    own: bool = False


def model_index(results: Sequence[CardResult]) -> list[Any]:
    """The ``model-index`` entries of ``results`` (huggingface_hub ``EvalResult``): the dataset by its Hub id where it
    has one, else by its benchmark name."""
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type="zero-shot-image-classification",
            dataset_type=r.dataset_id or r.benchmark,
            dataset_name=r.benchmark,
            dataset_split=r.split,
            dataset_revision=r.dataset_revision,
            metric_type="accuracy",
            metric_name=f"top-1 accuracy ({r.method})",
            metric_value=round(float(r.top1), 6),
        )
        for r in results
    ]


def eval_results_files(results: Sequence[CardResult], library_version: str) -> dict[str, str]:
    """The ``.eval_results`` files of ``results`` (path in the repo -> YAML text): one per benchmark read from the
    Hub, with the space's own method's accuracy, in huggingface_hub's format (``eval_result_entries_to_yaml``)."""
    import yaml
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    files: dict[str, str] = {}
    for r in results:
        if not r.own or not r.dataset_id:
            continue
        entry = EvalResultEntry(
            dataset_id=r.dataset_id,
            task_id=TASK_ID,
            value=round(float(r.top1), 6),
            dataset_revision=r.dataset_revision,
            notes=f"top-1 accuracy of {r.method}, split {r.split or 'test'}, s3-hf {library_version}",
        )
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", r.benchmark).strip("-.") or "benchmark"
        text = yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False, allow_unicode=True)
        files[f"{EVAL_RESULTS_FOLDER}/{name}.yaml"] = f"{HEADER}\n{text}"
    return files


def write_eval_results(folder: str | os.PathLike, results: Sequence[CardResult], library_version: str) -> list[Path]:
    """Write ``results`` into the space saved in ``folder``: its card's ``model-index`` (replacing the results there)
    and ``.eval_results/*.yaml`` (replacing the files s3-hf wrote there before); returns the files written.

    Args:
        folder: a saved synonym space whose ``README.md`` s3-hf rendered.
        results: the accuracies to report.
        library_version: the s3-hf version, recorded in the entries' notes.
    """
    from huggingface_hub import ModelCard

    folder = Path(folder)
    text = (folder / CARD_NAME).read_text(encoding="utf-8")
    if not is_s3_card(text):
        raise ArtifactError(f"{folder / CARD_NAME} is not a model card s3-hf wrote; results are not written into it.")
    card = ModelCard(text)
    card.data.eval_results = model_index(results) or None
    card.data.model_name = card.data.model_name or folder.name
    files = eval_results_files(results, library_version)
    for old in _written_by_us(folder):
        old.unlink()
    written = [write_text(folder / name, body) for name, body in files.items()]
    written.append(write_text(folder / CARD_NAME, str(card)))
    return written


def _written_by_us(folder: Path) -> list[Path]:
    """The ``.eval_results`` files in ``folder`` that s3-hf wrote (their first line is :data:`HEADER`)."""
    out = []
    for path in sorted((folder / EVAL_RESULTS_FOLDER).glob("*.yaml")):
        try:
            with path.open(encoding="utf-8") as f:
                if f.readline().rstrip("\n") == HEADER:
                    out.append(path)
        except (OSError, UnicodeDecodeError):
            continue
    return out


def stale_eval_results(folder: Path) -> list[str]:
    """``[".eval_results"]`` when that folder of ``folder`` holds only files s3-hf wrote: saving the space again
    renders a card without results, so they no longer describe it (a folder with anything else in it stays)."""
    results = folder / EVAL_RESULTS_FOLDER
    if not results.is_dir():
        return []
    entries = list(results.iterdir())
    return [EVAL_RESULTS_FOLDER] if entries and len(_written_by_us(folder)) == len(entries) else []


def carried_from(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Path]]:
    """What a push of the space saved in ``folder`` keeps of that folder's card, which the push renders afresh: its
    license and its evaluation results (model-index metadata, as :class:`~huggingface_hub.ModelCardData`
    attributes), with the ``.eval_results`` files s3-hf wrote beside them (path in the repo -> file). Results are
    carried only while the card still holds them: saving the space again renders a card without them, so results
    of a space since rebuilt are never pushed with the new one. Nothing for a card s3-hf did not write.

    Args:
        folder: a saved synonym space.
    """
    from huggingface_hub import ModelCard

    folder = Path(folder)
    try:
        text = (folder / CARD_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}, {}
    if not is_s3_card(text):
        return {}, {}
    data = ModelCard(text, ignore_metadata_errors=True).data
    metadata: dict[str, Any] = {"license": data.license} if data.license else {}
    if not data.eval_results:
        return metadata, {}
    metadata.update(eval_results=data.eval_results, model_name=data.model_name)
    files = {p.relative_to(folder).as_posix(): p for p in _written_by_us(folder)}
    return metadata, files


__all__ = [
    "EVAL_RESULTS_FOLDER",
    "HEADER",
    "TASK_ID",
    "CardResult",
    "carried_from",
    "eval_results_files",
    "model_index",
    "stale_eval_results",
    "write_eval_results",
]
