"""Reports from evaluation results: combined JSON, a markdown table, a gain figure, model-index entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s3_hf.fileio import write_json

RANDOM_NOTE = (
    "**These results were measured with random weights: they test the plumbing and mean nothing about accuracy.**"
)


def _methods(summary: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for rec in summary["benchmarks"].values():
        for m in rec.get("methods", {}):
            seen[m] = None
    return list(seen)


def markdown(summary: dict[str, Any]) -> str:
    methods = _methods(summary)
    lines = [f"# Zero-shot top-1 accuracy (%): {summary['model']}", ""]
    if summary.get("random_weights"):
        lines += [RANDOM_NOTE, ""]
    lines += [
        "| benchmark | n | " + " | ".join(methods) + " |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for name, rec in summary["benchmarks"].items():
        if "error" in rec:
            lines.append(f"| {name} | – | " + " | ".join("–" for _ in methods) + " |")
            continue
        cells = []
        for m in methods:
            r = rec["methods"].get(m)
            cells.append("–" if r is None else f"{100 * r['top1']:.2f}")
        lines.append(f"| {name} | {rec['samples']} | " + " | ".join(cells) + " |")
    errors = [(n, r["error"]) for n, r in summary["benchmarks"].items() if "error" in r]
    if errors:
        lines += ["", "Not evaluated:", *[f"- {n}: {e}" for n, e in errors]]
    lines += ["", "Top-5, mean per-class accuracy and per-class wins/losses against `label` are in results.json."]
    lines += fewshot_markdown(summary)
    return "\n".join(lines) + "\n"


def fewshot_markdown(summary: dict[str, Any]) -> list[str]:
    """Few-shot top-1 (%) per benchmark and shot count: mean ± std over support samples (seeds)."""
    rows = []
    for name, rec in summary["benchmarks"].items():
        fs = rec.get("fewshot")
        if not fs:
            continue
        if "error" in fs:
            rows.append(f"| {name} | – | – | {fs['error']} | | | |")
            continue
        seeds = len({r["seed"] for r in fs["runs"]})
        for k, methods in fs["summary"].items():
            cells = [f"{100 * m['top1_mean']:.2f} ± {100 * m['top1_std']:.2f}" for m in methods.values()]
            rows.append(f"| {name} | {k} | {seeds} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    base = next((r["fewshot"]["base"] for r in summary["benchmarks"].values() if "base" in r.get("fewshot", {})), "")
    return [
        "",
        f"## Few-shot top-1 accuracy (%), on top of `{base}`",
        "",
        "Mean ± standard deviation over support samples; α, β, γ (and GDA's α) tuned on a split of each support set.",
        "",
        "| benchmark | shots | seeds | zero-shot | cache | SSP | GDA |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]


def gain_figure(summary: dict[str, Any], path: Path) -> Path | None:
    """Per benchmark, each method's top-1 gain over ``label`` (percentage points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [n for n, r in summary["benchmarks"].items() if "methods" in r]
    methods = [m for m in _methods(summary) if m != "label"]
    if not benches or not methods:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(benches) * max(1, len(methods)) / 4), 4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        gains = [
            100
            * (
                summary["benchmarks"][b]["methods"].get(m, {}).get("top1", float("nan"))
                - summary["benchmarks"][b]["methods"]["label"]["top1"]
            )
            for b in benches
        ]
        ax.bar([i + j * width for i in range(len(benches))], gains, width, label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(benches))], benches, rotation=30, ha="right")
    ax.set_ylabel("top-1 gain over label (points)")
    title = "Gain over vanilla CLIP (label)" + (
        " — RANDOM WEIGHTS, meaningless" if summary.get("random_weights") else ""
    )
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(summary: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", summary)
    (out / "results.md").write_text(markdown(summary))
    gain_figure(summary, out / "gains.png")


def write_model_index(space_dir: str | Path, summary: dict[str, Any], method: str | None = None) -> Path:
    """Add the results of ``method`` (default: the space's own metric with its synonyms) and of the
    ``label`` baseline to the artifact's model card as ``model-index`` entries."""
    from huggingface_hub import EvalResult, ModelCard

    from s3_hf import SynonymSpace

    if summary.get("random_weights"):
        raise ValueError("Refusing to write accuracy measured with random weights into a model card.")
    space_dir = Path(space_dir)
    space = SynonymSpace.from_pretrained(space_dir)
    card = ModelCard.load(space_dir / "README.md")
    results = []
    for name, rec in summary["benchmarks"].items():
        if "methods" not in rec:
            continue
        chosen = method or next(
            (m for m in rec["methods"] if m.startswith("s3/") and m.endswith(f"/{space.config.metric}")), None
        )
        for m in [x for x in (chosen, "label") if x and x in rec["methods"]]:
            results.append(
                EvalResult(
                    task_type="zero-shot-image-classification",
                    dataset_type=name,
                    dataset_name=name,
                    metric_type="accuracy",
                    metric_name=f"top-1 accuracy ({m})",
                    metric_value=round(rec["methods"][m]["top1"], 6),
                )
            )
    card.data.eval_results = results
    card.data.model_name = card.data.model_name or space_dir.name
    card.save(space_dir / "README.md")
    return space_dir / "README.md"


__all__ = [
    "RANDOM_NOTE",
    "fewshot_markdown",
    "gain_figure",
    "markdown",
    "write_model_index",
    "write_reports",
]
