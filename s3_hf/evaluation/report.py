"""Reports from evaluation results: combined JSON, markdown tables (top-1, calibration), a gain figure, a
reliability diagram, model-index entries."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from s3_hf.errors import EvalError
from s3_hf.evaluation.results import MethodScores, RunResult
from s3_hf.io.files import load_json_text, save_figure, write_json, write_text
from s3_hf.space.card_results import CardResult

logger = logging.getLogger("s3_hf.evaluation")
#: The files of ``--out`` that s3 eval wrote: only these are replaced without ``--overwrite``.
MANIFEST = ".s3_eval_files.json"
#: A run's own files, beside one results file per benchmark.
RUN_FILES = ("results.json", "results.md", "gains.png", "reliability.png")

RANDOM_NOTE = (
    "**These results were measured with random weights: they test the plumbing and mean nothing about accuracy.**"
)


def _methods(summary: RunResult) -> list[str]:
    return list(dict.fromkeys(m for rec in summary.benchmarks.values() for m in rec.methods))


def markdown(summary: RunResult) -> str:
    """The results table: top-1 (%) per benchmark and method, and the few-shot table."""
    methods = _methods(summary)
    lines = [f"# Zero-shot top-1 accuracy (%): {summary.model}", ""]
    if summary.random_weights:
        lines += [RANDOM_NOTE, ""]
    lines += [
        "| benchmark | n | " + " | ".join(methods) + " |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for name, rec in summary.benchmarks.items():
        if rec.error is not None:
            lines.append(f"| {name} | – | " + " | ".join("–" for _ in methods) + " |")
            continue
        cells = []
        for m in methods:
            r = rec.methods.get(m)
            cell = "–" if r is None else f"{100 * (r.top1 or 0.0):.2f}"
            if r is not None and r.std is not None:  # a method of several random draws: mean ± std over them
                cell += f" ± {100 * r.std['top1']:.2f}"
            cells.append(cell)
        lines.append(f"| {name} | {rec.samples} | " + " | ".join(cells) + " |")
    errors = [(n, r.error) for n, r in summary.benchmarks.items() if r.error is not None]
    if errors:
        lines += ["", "Not evaluated:", *[f"- {n}: {e}" for n, e in errors]]
    lines += ["", "Top-5, mean per-class accuracy and per-class wins/losses against `label` are in results.json."]
    if any(r.std is not None for rec in summary.benchmarks.values() for r in rec.methods.values()):
        lines += ["Methods shown as mean ± std are averaged over random draws (WaffleCLIP: seeds 0-6 by default)."]
    lines += calibration_markdown(summary)
    lines += adaptation_markdown(summary)
    lines += fewshot_markdown(summary)
    return "\n".join(lines) + "\n"


def calibration_markdown(summary: RunResult) -> list[str]:
    """Per benchmark and method: top-1 (%) next to the expected calibration error (%, 15 equal-width bins of the
    top probability) and the negative log-likelihood, of the engine's probabilities (the model's own temperature)."""
    rows = []
    for name, rec in summary.benchmarks.items():
        for method, r in rec.methods.items():
            if rec.error is None and (r.ece is not None or r.nll is not None):
                ece = "–" if r.ece is None else f"{100 * r.ece:.2f}"
                nll = "–" if r.nll is None else f"{r.nll:.4f}"
                rows.append(f"| {name} | {method} | {100 * (r.top1 or 0.0):.2f} | {ece} | {nll} |")
    if not rows:
        return []
    return [
        "",
        "## Calibration",
        "",
        "Expected calibration error (15 equal-width bins of the top probability) and negative log-likelihood of the "
        "true class, with the probabilities the model gives (its own temperature; sigmoid per class for SigLIP "
        "families), never a temperature tuned on the test set. The reliability diagram is reliability.png.",
        "",
        "| benchmark | method | top-1 (%) | ECE (%) | NLL |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]


def adaptation_markdown(summary: RunResult) -> list[str]:
    """Per benchmark and test-time adaptation method: its protocol, the method it adapts, each stream seed's top-1
    (%), their mean ± std, the mean ECE and NLL, and the short hashes of the options and of each order."""
    rows = []
    for name, rec in summary.benchmarks.items():
        for method, r in rec.methods.items():
            s = r.stream
            if rec.error is not None or s is None:
                continue
            top1 = (r.draws or {}).get("top1", [])
            seeds = ", ".join(f"{seed}: {100 * t:.2f}" for seed, t in zip(s.seeds, top1, strict=False))
            std = (r.std or {}).get("top1", 0.0)
            ece = "–" if r.ece is None else f"{100 * r.ece:.2f}"
            nll = "–" if r.nll is None else f"{r.nll:.4f}"
            orders = ", ".join(h[:12] for h in s.permutation_sha256)
            rows.append(
                f"| {name} | {method} | {s.protocol} | {s.base} | {seeds} | {100 * (r.top1 or 0.0):.2f} ± "
                f"{100 * std:.2f} | {ece} | {nll} | {s.config_hash[:12]} | {orders} |"
            )
    if not rows:
        return []
    return [
        "",
        "## Test-time adaptation",
        "",
        "Each image is scored once, when it arrives, from the state before it (prequential), over one seeded order "
        "of every image per seed (single-stream: the same for any number of processes). Per-process rows adapt each "
        "process's shard on its own state, a simulation of deployment: never compare them with single-stream rows.",
        "",
        "| benchmark | method | protocol | adapts | top-1 per seed (%) | top-1 mean ± std (%) | ECE (%) | NLL "
        "| config sha256 | order sha256 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]


def fewshot_markdown(summary: RunResult) -> list[str]:
    """Few-shot top-1 (%) per benchmark and shot count: mean ± std over support samples (seeds); then the mean ECE
    (%) of the methods scored with the engine's probabilities."""
    rows, ece_rows = [], []
    for name, rec in summary.benchmarks.items():
        fs = rec.fewshot
        if fs is None:
            continue
        if fs.error is not None:
            rows.append(f"| {name} | – | – | {fs.error} | | | |")
            continue
        seeds = len({r.seed for r in fs.runs})
        for k, methods in fs.summary.items():
            cells = [f"{100 * m['top1_mean']:.2f} ± {100 * m['top1_std']:.2f}" for m in methods.values()]
            rows.append(f"| {name} | {k} | {seeds} | " + " | ".join(cells) + " |")
            eces = [f"{100 * m['ece_mean']:.2f}" if "ece_mean" in m else "–" for m in methods.values()]
            if any(e != "–" for e in eces):
                ece_rows.append(f"| {name} | {k} | " + " | ".join(eces) + " |")
    if not rows:
        return []
    calibration = [
        "",
        "Expected calibration error (%, 15 bins), mean over support samples; GDA's scores are not the model's "
        "probabilities (a fitted Gaussian term), so it has none.",
        "",
        "| benchmark | shots | zero-shot | cache | SSP | GDA |",
        "| --- | --- | --- | --- | --- | --- |",
        *ece_rows,
    ]
    base = next((r.fewshot.base for r in summary.benchmarks.values() if r.fewshot and r.fewshot.base), "")
    return [
        "",
        f"## Few-shot top-1 accuracy (%), on top of `{base}`",
        "",
        "Mean ± standard deviation over support samples; α, β, γ (and GDA's α) tuned on a split of each support set.",
        "",
        "| benchmark | shots | seeds | zero-shot | cache | SSP | GDA |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        *(calibration if ece_rows else []),
    ]


def gain_figure(summary: RunResult, path: Path) -> Path | None:
    """Per benchmark, each method's top-1 gain over ``label`` (percentage points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [n for n, r in summary.benchmarks.items() if r.error is None]
    methods = [m for m in _methods(summary) if m != "label"]
    if not benches or not methods:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(benches) * max(1, len(methods)) / 4), 4))
    width = 0.8 / len(methods)
    nan = MethodScores(float("nan"))
    for j, m in enumerate(methods):
        recs = [summary.benchmarks[b].methods for b in benches]
        gains = [100 * ((r.get(m, nan).top1 or 0.0) - (r["label"].top1 or 0.0)) for r in recs]
        ax.bar([i + j * width for i in range(len(benches))], gains, width, label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(benches))], benches, rotation=30, ha="right")
    ax.set_ylabel("top-1 gain over label (points)")
    title = "Gain over vanilla CLIP (label)" + (" — RANDOM WEIGHTS, meaningless" if summary.random_weights else "")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def reliability_figure(summary: RunResult, path: Path) -> Path | None:
    """Per benchmark, each method's reliability diagram: the top-1 accuracy of each bin of the top probability
    against the bin's mean top probability (a calibrated model lies on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [
        (n, {m: r.reliability for m, r in rec.methods.items() if r.reliability is not None})
        for n, rec in summary.benchmarks.items()
        if rec.error is None
    ]
    benches = [(n, curves) for n, curves in benches if curves]
    if not benches:
        return None
    fig, axes = plt.subplots(1, len(benches), figsize=(4 * len(benches), 4), squeeze=False)
    for ax, (name, curves) in zip(axes[0], benches, strict=True):
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--")
        for method, bins in curves.items():
            points = [(c, a) for n, c, a in zip(bins.counts, bins.confidence, bins.accuracy, strict=True) if n]
            ax.plot([c for c, _ in points], [a for _, a in points], marker="o", ms=3, label=method)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean top probability", ylabel="top-1 accuracy", title=name)
        ax.legend(fontsize=6)
    title = "Reliability" + (" — RANDOM WEIGHTS, meaningless" if summary.random_weights else "")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def read_results(path: str | os.PathLike, what: str = "results file") -> Any:
    """A JSON results file; :class:`EvalError` when it cannot be read or parsed (including absurdly deep nesting)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise EvalError(f"The {what} {path} does not exist.") from err
    except (OSError, UnicodeDecodeError) as err:
        raise EvalError(f"The {what} {path} is not a readable file written by s3 eval ({err}).") from err
    return load_json_text(text, EvalError, f"the {what} {path}", "It must be a JSON file written by s3 eval.")


def owned_files(out: Path) -> set[str]:
    """Names of the files in ``out`` that s3 eval wrote (its manifest); none when the manifest is unreadable."""
    path = out / MANIFEST
    if not path.is_file():
        return set()
    try:
        files = read_results(path, "manifest")["files"]
        return {f for f in files if isinstance(f, str)}
    except (EvalError, KeyError, TypeError) as err:
        logger.warning("%s; every file in %s is taken as not written by s3 eval.", err, out)
        return set()


def check_outputs(out: Path, names: Iterable[str], overwrite: bool = False) -> None:
    """Refuse to replace a file in ``out`` that s3 eval did not write (a user's ``results.md``, say), unless
    ``overwrite``; called before any work, so a refused run costs nothing."""
    names = list(dict.fromkeys(names))
    folder = next((n for n in names if (out / n).is_dir()), None)
    if folder is not None:  # never removed, --overwrite or not
        raise EvalError(f"{out / folder} is a folder where s3 eval writes a file: move it away, or pass another --out.")
    if overwrite:
        return
    owned = owned_files(out)
    foreign = [n for n in names if n not in owned and os.path.lexists(out / n)]
    if foreign:
        more = f" (and {len(foreign) - 1} more of the files this run writes)" if len(foreign) > 1 else ""
        raise EvalError(
            f"{out / foreign[0]} exists and was not written by s3 eval{more}: pass --overwrite to replace it, or "
            "another --out."
        )


def claim_outputs(out: Path, names: Iterable[str]) -> None:
    """Record ``names`` in ``out``'s manifest as written by s3 eval (before they are written, so a run killed
    half way leaves no file the next run refuses)."""
    out.mkdir(parents=True, exist_ok=True)
    owned = owned_files(out)
    files = owned | set(names)
    if files != owned:
        write_json(out / MANIFEST, {"written_by": "s3-hf eval", "files": sorted(files)})


def write_reports(summary: RunResult, out: Path) -> None:
    """``results.json``, ``results.md``, ``gains.png`` and ``reliability.png`` of a classification run."""
    claim_outputs(out, RUN_FILES)
    write_json(out / "results.json", summary.to_dict())
    write_text(out / "results.md", markdown(summary))
    gain_figure(summary, out / "gains.png")
    reliability_figure(summary, out / "reliability.png")


def _source_id(source: Any) -> str | None:
    """What identifies a synonym source in a provenance record (its name, file and curated benchmark; not dates)."""
    if not isinstance(source, dict):
        return None
    return json.dumps(
        {k: source[k] for k in ("name", "file", "benchmark") if source.get(k) is not None}, sort_keys=True
    )


def card_results(space: Any, summary: Any, method: str | None = None) -> dict[str, list[str]]:
    """Benchmark -> the methods of ``summary`` to write into ``space``'s card: ``method`` (default: the S^3 method
    with the space's metric and synonym source) and the ``label`` baseline, for every benchmark whose classes are
    the space's. :class:`EvalError` (nothing written) when the results were measured with random weights (or do not
    say they were not), with another model, on no benchmark with the space's classes, or with another synonym
    source."""
    from s3_hf.space.artifact import same_model

    if not isinstance(summary, RunResult):
        try:
            summary = RunResult.from_dict(summary)
        except TypeError as err:
            raise EvalError(str(err)) from None
    records = {n: r for n, r in summary.benchmarks.items() if r.error is None}
    marks = [summary.random_weights, *(r.random_weights for r in records.values())]
    if any(mark is not False for mark in marks):
        raise EvalError(
            "Refusing to write accuracy measured with random weights (or results that do not record that their "
            "weights were trained) into a model card."
        )
    base = space.config.base_model
    models = [summary.model, *(r.model or summary.model for r in records.values())]
    others = [m for m in models if not isinstance(m, str) or not same_model(m, base)]
    revision, built = summary.revision, space.config.base_model_revision
    if not others and isinstance(revision, str) and isinstance(built, str) and revision != built:
        others = [f"{summary.model}@{revision}"]
    if others:
        raise EvalError(
            f"These results were measured with {others[0]!r}, but the space was built with {base!r}: its accuracy "
            "would be another model's. Evaluate the space's own model."
        )
    labels = list(space.labels)
    matching = {n: r for n, r in records.items() if r.class_names == labels}
    if not matching:
        raise EvalError(
            f"No benchmark in these results has the space's {len(labels)} classes ({', '.join(labels[:5])}...): "
            "results record their benchmark's class names since this release; evaluate the benchmark the space "
            "was built for."
        )
    wanted = {_source_id(c.source) for c in space.classes}
    chosen: dict[str, list[str]] = {}
    for name, rec in matching.items():
        synonyms = rec.synonyms
        if method is None:
            s3 = [m for m in rec.methods if m.startswith("s3/") and m.endswith(f"/{space.config.metric}")]
            pick = next((m for m in s3 if {_source_id(synonyms.get(m))} == wanted), None)
            if s3 and pick is None:
                raise EvalError(
                    f"{name}: no S^3 result in these results used the space's synonym source "
                    f"({', '.join(sorted(str(w) for w in wanted))}); evaluate with the space's synonyms."
                )
        else:
            if method not in rec.methods:
                raise EvalError(f"{name} has no results for method {method!r}; it has {sorted(rec.methods)}.")
            pick = method
            if method.startswith("s3/") and {_source_id(synonyms.get(method))} != wanted:
                raise EvalError(f"{name}: {method!r} used another synonym source than the space's.")
        chosen[name] = [m for m in dict.fromkeys((pick, "label")) if m and m in rec.methods]
    return chosen


def card_entries(space: Any, summary: RunResult | dict[str, Any], method: str | None = None) -> list[CardResult]:
    """The :class:`~s3_hf.space.card_results.CardResult` of each benchmark and method :func:`card_results` chooses
    for ``space`` (the first method of a benchmark is the space's own unless it is the label-only baseline), with the
    Hub dataset the benchmark was read from: as the results record it, else as their benchmark identity does, else
    (results that record neither, for a benchmark not read from a folder) the registry's."""
    from s3_hf.evaluation.data.registry import REGISTRY as registry

    runs = summary if isinstance(summary, RunResult) else RunResult.from_dict(summary)
    chosen = card_results(space, runs, method)
    out = []
    for name, methods in chosen.items():
        rec = runs.benchmarks[name]
        identity = rec.identity or {}
        known = registry.get(name) if "path" not in identity else None
        dataset = rec.dataset_id or identity.get("hub_id") or (known.hub_id if known else None)
        split = identity.get("split") or (known.split if known and dataset == known.hub_id else None)
        revision = rec.dataset_revision or (known.revision if known and dataset == known.hub_id else None)
        for i, m in enumerate(methods):
            top1 = rec.methods[m].top1
            if top1 is None:
                raise ValueError(f"{name}: {m} records no top-1 accuracy")
            own = i == 0 and m != "label"
            out.append(CardResult(name, m, float(top1), dataset, revision, split if dataset else None, own))
    return out


__all__ = [
    "MANIFEST",
    "RANDOM_NOTE",
    "RUN_FILES",
    "calibration_markdown",
    "card_entries",
    "card_results",
    "check_outputs",
    "claim_outputs",
    "fewshot_markdown",
    "gain_figure",
    "markdown",
    "owned_files",
    "read_results",
    "reliability_figure",
    "write_reports",
]
