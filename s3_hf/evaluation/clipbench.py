"""Results in CLIP_benchmark's format: one JSON per benchmark and zero-shot method, in ``<out>/clip_benchmark/``.

A file holds what ``clip_benchmark eval`` writes for a zero-shot classification run: ``dataset``, ``model``,
``pretrained``, ``task`` (``zeroshot_classification``), ``metrics`` (``acc1``, ``acc5``, ``mean_per_class_recall``)
and ``language``, so that ``clip_benchmark build <out>/clip_benchmark`` puts S^3 in the same CSV as the models its
users compare. ``model`` is the model id, ``pretrained`` the method (``label``, ``ensemble``, ``s3/wordnet/
local_center``, ...), so that ``build``'s ``model_fullname`` tells the methods apart. Like ``clip_benchmark``, a
benchmark of fewer than five classes has no top-5 accuracy: ``acc5`` is NaN (written as ``NaN``, as its files hold
it). A Hub benchmark copied by CLIP_benchmark (``clip-benchmark/wds_*``) is named as CLIP_benchmark names it
(``wds_vtab-pets`` is ``vtab/pets``), any other by its name in the run.

The files sit in a folder of their own because ``build`` reads every ``.json`` of a folder it is given. A few
scalar fields follow CLIP_benchmark's own (``build`` makes each one a column): ``method``, ``model_revision``,
``dataset_id``, ``dataset_revision``, ``samples`` and ``random_weights``. Results measured with random weights (or
that do not record trained weights) are written like ``results.json`` writes them, marked: ``random_weights`` is
true and ``pretrained`` ends in :data:`RANDOM_MARK`, so that no row of a built table passes for a result.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError
from s3_hf.evaluation import report
from s3_hf.evaluation.results import BenchmarkResult, MethodScores, RunResult
from s3_hf.io.files import write_json

#: The folder of ``--out`` the files are written to.
FOLDER = "clip_benchmark"
TASK = "zeroshot_classification"
LANGUAGE = "en"
#: Appended to ``pretrained`` for results measured with random weights.
RANDOM_MARK = " (RANDOM WEIGHTS: meaningless)"
#: The Hub organisation of CLIP_benchmark's webdataset copies.
HUB_OWNER = "clip-benchmark"
_SLUG_CHARS = 60


def _slug(text: str) -> str:
    return re.sub(r"[^\w.+-]+", "-", text).strip("-")[:_SLUG_CHARS] or "x"


def dataset_name(rec: BenchmarkResult) -> str:
    """The name CLIP_benchmark gives a benchmark: for its own Hub copy ``clip-benchmark/wds_<name>`` the dataset
    name its ``--dataset_root`` template turns into that repo (``vtab-pets`` -> ``vtab/pets``, ``cars``), without
    the ``wds/`` loader prefix (its published tables name datasets so); else the benchmark's name in the run."""
    owner, _, repo = (rec.dataset_id or "").partition("/")
    if owner == HUB_OWNER and repo.startswith("wds_"):
        name = repo.removeprefix("wds_")
        return "vtab/" + name.removeprefix("vtab-") if name.startswith("vtab-") else name
    return rec.name


def _metric(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def metrics(rec: BenchmarkResult, scores: MethodScores) -> dict[str, float]:
    """CLIP_benchmark's single-label metrics: top-1, top-5 (NaN below five classes, as CLIP_benchmark has it; ours
    is then top-``classes``, always 1) and the mean per-class recall (our mean per-class accuracy: the accuracy of
    each class present, averaged); a figure not measured is NaN."""
    return {
        "acc1": _metric(scores.top1),
        "acc5": _metric(scores.top5) if rec.classes >= 5 else float("nan"),
        "mean_per_class_recall": _metric(scores.mean_per_class),
    }


def _stem(rec: BenchmarkResult) -> str:
    """The benchmark's results file stem (unique per data location), else its slugged name."""
    results = rec.files.get("results", "")
    return results.removesuffix(".json") if results.endswith(".json") else _slug(rec.name)


def file_name(rec: BenchmarkResult, method: str, model: str) -> str:
    """``<benchmark>_<method>_<model>_en_zeroshot_classification.json``: CLIP_benchmark's default order
    (dataset, pretrained, model, language, task), each part made safe for a file name."""
    return f"{_stem(rec)}_{_slug(method)}_{_slug(Path(model).name or model)}_{LANGUAGE}_{TASK}.json"


def records(summary: RunResult) -> dict[str, dict[str, Any]]:
    """File name -> CLIP_benchmark record, for every evaluated benchmark and zero-shot method of ``summary``."""
    out: dict[str, dict[str, Any]] = {}
    for rec in summary.benchmarks.values():
        if rec.error is not None:
            continue
        model = rec.model or summary.model or ""
        random = summary.random_weights is not False or rec.random_weights is not False
        for method, scores in rec.methods.items():
            out[file_name(rec, method, model)] = {
                "dataset": dataset_name(rec),
                "model": model,
                "pretrained": method + (RANDOM_MARK if random else ""),
                "task": TASK,
                "metrics": metrics(rec, scores),
                "language": LANGUAGE,
                "method": method,
                "model_revision": summary.revision,
                "dataset_id": rec.dataset_id,
                "dataset_revision": rec.dataset_revision,
                "samples": rec.samples,
                "random_weights": random,
            }
    return out


def _present(out: Path) -> list[str]:
    folder = out / FOLDER
    return sorted(f"{FOLDER}/{e.name}" for e in os.scandir(folder)) if folder.is_dir() else []


def check_folder(out: Path, overwrite: bool = False) -> None:
    """Refuse (before any work, :class:`~s3_hf.errors.EvalError`) a ``clip_benchmark`` folder in ``out`` that
    holds files s3 eval did not write, unless ``overwrite``: ``build`` would put them in the same table."""
    if os.path.lexists(out / FOLDER) and not (out / FOLDER).is_dir():  # never removed, --overwrite or not
        raise EvalError(f"{out / FOLDER} is a file where s3 eval writes a folder: move it away, or pass another --out.")
    report.check_outputs(out, [n for n in _present(out) if not (out / n).is_dir()], overwrite)


def write_files(summary: RunResult, out: Path) -> list[Path]:
    """Write the CLIP_benchmark files of ``summary`` to ``out/clip_benchmark/`` and remove the ones an earlier
    run wrote there that this run does not (a method or benchmark no longer evaluated), so that ``build`` on the
    folder reads this run alone. The written paths."""
    files = {f"{FOLDER}/{name}": record for name, record in records(summary).items()}
    owned = report.owned_files(out)
    for stale in sorted(set(_present(out)) & owned - set(files)):
        (out / stale).unlink(missing_ok=True)
    report.claim_outputs(out, files)
    return [write_json(out / name, record) for name, record in files.items()]


__all__ = [
    "FOLDER",
    "HUB_OWNER",
    "LANGUAGE",
    "RANDOM_MARK",
    "TASK",
    "check_folder",
    "dataset_name",
    "file_name",
    "metrics",
    "records",
    "write_files",
]
