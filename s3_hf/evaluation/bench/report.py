"""``bench.md`` and ``bench.png`` from a bench's typed results."""

from __future__ import annotations

from pathlib import Path

from s3_hf.evaluation.bench.rows import (
    TTA_TARGET,
    BenchResults,
    FewshotResult,
    ImagesResult,
    SegmentationResult,
    TTAResult,
)
from s3_hf.io.files import save_figure
from s3_hf.space.scoring import METRICS


def _table(header: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]


def _inference(results: BenchResults) -> list[str]:
    lines = ["## Inference (images/s)", ""]
    lines += _table(["dtype", "batch", "classes", "(a) bare CLIP", "(b) + decode", *METRICS, "transformers"])
    for r in results.inference:
        cells = [f"{r.metrics[m].img_s:.1f} ({r.metrics[m].ratio:.2f}x)" for m in METRICS]
        hf = "n/a (not a transformers model)"
        if r.transformers_img_s:
            speedup = r.metrics["local_center"].img_s / r.transformers_img_s
            hf = f"{r.transformers_img_s:.2f} (S^3 {speedup:.0f}x faster)"
        lines.append(
            f"| {r.dtype} | {r.batch_size} | {r.classes} | {r.bare_img_s:.1f} | {r.decode_img_s:.1f} | "
            + " | ".join(cells)
            + f" | {hf} |"
        )
    lines += ["", "## S^3's own work per batch (scoring + postprocessing, timed alone; share of a batch of (b))", ""]
    lines += _table(["dtype", "batch", "classes", *METRICS])
    for r in results.inference:
        cells = [f"{r.metrics[m].own_ms:.1f} ms ({r.metrics[m].own_share:.2%})" for m in METRICS]
        lines.append(f"| {r.dtype} | {r.batch_size} | {r.classes} | " + " | ".join(cells) + " |")
    return lines


def _build(results: BenchResults) -> list[str]:
    lines = ["", "## Building (one template)", ""]
    lines += _table(["classes", "concepts", "prompts", "text s", "geometry s", "geometry share"])
    for r in results.build:
        lines.append(
            f"| {r.classes} | {r.concepts} | {r.prompts} | {r.text_s:.1f} | {r.geometry_s:.2f} | "
            f"{r.geometry_share:.1%} |"
        )
    return lines


def _fewshot(f: FewshotResult) -> list[str]:
    lines = ["", f"## Few-shot (SSP) at {f.classes} classes", ""]
    lines += [f"Support encoding (global + {f.patches} local features per image): {f.support_img_s:.1f} images/s.", ""]
    lines += _table(["shots", "support images", "fit s (tuning included)"])
    lines += [f"| {r.shots} | {r.support_images} | {r.fit_s:.1f} |" for r in f.fit]
    lines += ["", *_table(["batch", "shots", "S^3 + SSP images/s", "x of (b)", "x of S^3 alone"])]
    lines += [
        f"| {r.batch_size} | {r.shots} | {r.ssp_img_s:.1f} | {r.ssp_over_b:.2f} | {r.ssp_over_s3:.2f} |"
        for r in f.inference
    ]
    return lines


IMAGE_COLUMNS = [
    "device", "set", "decode", "decode + preprocess", "bare encoder", "bare, workers", "S^3 end to end (10 labels)",
    "S^3, workers", "x of bare", "x of bare with workers", "eval loader", "eval, workers", "transformers pipeline",
    "S^3 x of transformers",
]  # fmt: skip


def _images(g: ImagesResult) -> list[str]:
    lines = ["", "## The image path (images/s; exact = every pixel decoded, fast = reduced-size JPEG decoding)", ""]
    lines += [
        f"Workers: {g.rows[0].workers if g.rows else 0} (image worker threads; see s3_hf.io.parallel). Ratios are "
        "medians over alternating runs.",
        "",
        *_table(IMAGE_COLUMNS),
    ]
    for r in g.rows:
        hf = "– | – |"
        if r.transformers_img_s is not None:
            hf = f"{r.transformers_img_s:.2f} | {r.s3_over_transformers:.2f} |"
        lines.append(
            f"| {r.device} | {r.set} | {r.decode} | {r.decode_img_s:.1f} | {r.bare_img_s:.1f} | "
            f"{r.bare_workers_img_s:.1f} | {r.s3_img_s:.1f} | {r.s3_workers_img_s:.1f} | "
            f"{r.s3_workers_over_bare:.2f} | {r.s3_workers_over_bare_workers:.2f} | {r.eval_img_s:.1f} | "
            f"{r.eval_workers_img_s:.1f} | " + hf
        )
    a = g.decode_agreement
    if a:
        lines += [
            "",
            f"S^3 scores, exact vs fast decoding of the {a.images} 12 MP photos (10 labels): top-1 agreement "
            f"{a.top1_agreement:.1%}, mean |Δp| {a.mean_abs_prob_diff:.4f}, largest {a.max_abs_prob_diff:.4f}"
            + (" (random weights: not meaningful; run with trained weights)." if a.random_weights else "."),
        ]
    if g.backends:
        lines += [
            "",
            f"Preprocessing of fast-decoded 12 MP photos: PIL backend {g.backends.img_s['pil']:.0f} "
            f"img/s, torchvision backend {g.backends.img_s['torchvision']:.0f} img/s.",
        ]
    return lines


def _segmentation(g: SegmentationResult) -> list[str]:
    lines = ["", f"## Segmentation: dense inference at {g.classes} classes x {g.concepts} concepts ({g.images} images)"]
    header = ["short side", "variant", "end to end img/s", "dense forward img/s", "end to end / dense forward"]
    header += ["plain forward img/s", "S^3 scoring ms/img", "scoring share of the dense forward"]
    lines += ["", *_table(header)]
    lines += [
        f"| {r.short_side} | {r.variant} | {r.img_s:.2f} | {r.dense_img_s:.2f} | {r.dense_ratio:.2f} | "
        f"{r.plain_img_s:.2f} | {r.scoring_ms:.1f} | {r.scoring_share:.1%} |"
        for r in g.rows
    ]
    if g.memory:
        lines += ["", f"Peak memory of one segmentation in a fresh process: {g.memory.peak_bytes / 2**20:,.0f} MiB."]
    return lines


def _tta(t: TTAResult) -> list[str]:
    m, mb = t.memory, 1e6
    verdict = "within" if t.within_target else "above"
    growth = "no growth" if m.bytes_n == m.bytes_10n else "it GREW"
    bound = "within" if m.bytes_10n <= m.formula_bytes else "ABOVE"
    return [
        "",
        f"## Test-time adaptation (TS^3) at {t.classes} classes",
        "",
        f"Adaptation step (state update + adapted scoring, on precomputed embeddings and static scores): "
        f"{t.adapt_ms:.2f} ms/image; decode + encode of the same {t.images} images (batches of {t.batch_size}): "
        f"{t.encode_ms:.1f} ms/image. Extra cost: {t.overhead:.2%} of decode + encode (median over alternating "
        f"runs; {verdict} the {TTA_TARGET:.0%} target).",
        "",
        f"State (saved tensors, D = {m.dim}, S+ = {m.pos_size}, S- = {m.neg_size}): {m.bytes_n / mb:.2f} MB after "
        f"{m.images:,} images, {m.bytes_10n / mb:.2f} MB after {10 * m.images:,} ({growth}); the design's bound "
        f"C(S+ + S-)(D+2)·4 + C²S-/8 + (C+1)(D+1)·4 = {m.formula_bytes / mb:.2f} MB ({bound}).",
        *_zero(t),
    ]


def _zero(t: TTAResult) -> list[str]:
    if t.zero is None:
        return []
    z = t.zero
    return [
        "",
        f"ZERO-S^3 (stateless: {z.views} views per image, the confident ones vote): {z.zero_ms:,.0f} ms/image against "
        f"{z.static_ms:.1f} ms/image for static S^3 on the same {z.images} images, decoding included: {z.ratio:.1f}x "
        "(median over alternating runs).",
    ]


def _memory(results: BenchResults) -> list[str]:
    m, mib = results.memory, 2**20
    if m is None:
        return []
    at = f"at {results.artifact.classes} classes " if results.artifact else ""
    return [
        "",
        f"Peak memory classifying 32 images: bare CLIP {m.bare.peak_bytes / mib:.0f} MiB, S^3 pipeline {at}"
        f"{m.s3.peak_bytes / mib:.0f} MiB ({m.ratio:.3f}x); resident afterwards {m.bare.resident_bytes / mib:.0f} "
        f"vs {m.s3.resident_bytes / mib:.0f} MiB ({m.resident_ratio:.3f}x).",
    ]


def markdown(results: BenchResults) -> str:
    """``bench.md``: one section per part that ran, and a line per part that was skipped.

    Args:
        results: what the bench measured.
    """
    env = results.environment
    lines = [
        f"# s3 bench: {env.model} on {env.device_name}",
        "",
        f"{'Random weights (timing only; no accuracy is measured). ' if env.random_weights else ''}"
        f"{env.num_images} real images, {env.concepts} concepts per class, medians of {env.repeats} runs; "
        "`x` = median over runs of the throughput ratio to bare CLIP with decoding and preprocessing (b), the two "
        "run alternately in the same process.",
        "",
    ]
    lines += _inference(results) if results.inference else []
    lines += _build(results) if results.build else []
    if results.artifact:
        a = results.artifact
        lines += ["", f"Artifact size at {a.classes} classes x {a.concepts} concepts: {a.bytes / 1e6:.1f} MB."]
    lines += _fewshot(results.fewshot) if results.fewshot else []
    lines += _images(results.images) if results.images else []
    lines += _segmentation(results.segmentation) if results.segmentation else []
    lines += _tta(results.tta) if results.tta else []
    lines += _memory(results)
    if results.skipped:
        lines += ["", *[f"Skipped {part}: {why}." for part, why in results.skipped.items()]]
    return "\n".join(lines) + "\n"


def plot(results: BenchResults, path: Path) -> Path | None:
    """``bench.png``: inference images/s against classes at the largest batch, and build seconds against concepts;
    ``None`` (nothing written) without matplotlib or inference rows.

    Args:
        results: what the bench measured.
        path: the image file to write.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not results.inference:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    largest = max(r.batch_size for r in results.inference)
    rows = [r for r in results.inference if r.batch_size == largest]
    rows = [r for r in rows if r.dtype == rows[0].dtype]
    cs = [r.classes for r in rows]
    for m in METRICS:
        axes[0].plot(cs, [r.metrics[m].img_s for r in rows], marker="o", label=m)
    axes[0].plot(cs, [r.decode_img_s for r in rows], "k--", label="CLIP (b)")
    if all(r.transformers_img_s for r in rows):
        axes[0].plot(cs, [r.transformers_img_s for r in rows], "k:", label="transformers pipeline")
    axes[0].set(xscale="log", yscale="log", xlabel="classes", ylabel="images/s", title=f"Inference, batch {largest}")
    axes[0].legend(fontsize=7)
    for c in sorted({r.classes for r in results.build}):
        sub = [r for r in results.build if r.classes == c]
        concepts = [r.concepts for r in sub]
        axes[1].plot(concepts, [r.text_s + r.geometry_s for r in sub], marker="o", label=f"C={c} total")
        axes[1].plot(concepts, [r.geometry_s for r in sub], ls="--", label=f"C={c} geometry")
    axes[1].set(yscale="log", xlabel="concepts per class (M)", ylabel="seconds", title="Building a space")
    if results.build:
        axes[1].legend(fontsize=7)
    else:
        axes[1].set_axis_off()
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path
