"""``s3 bench``: throughput, build cost, memory and size, written as JSON, markdown and a plot
(:mod:`s3_hf.evaluation.bench`)."""

from __future__ import annotations

import argparse

from s3_hf.cli.arguments import NON_NEGATIVE, POSITIVE, Subparsers
from s3_hf.cli.common import int_list, load_eval_module


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Add ``s3 bench`` to the ``s3`` command's sub-parsers."""
    n = subparsers.add_parser("bench", help="throughput, build cost, memory and size; writes JSON, markdown and a plot")
    n.add_argument("--model", help="CLIP folder or Hub id (default: $S3_BENCH_MODEL)")
    n.add_argument("--images", help="folder of real images (default: $S3_BENCH_IMAGES, else $S3_IMAGENET_SAMPLE)")
    n.add_argument("--out", default="bench_results")
    n.add_argument("--device", default="auto")
    n.add_argument("--dtypes", help="comma list, e.g. float32,float16 (default: float32; GPU adds fp16/bf16)")
    n.add_argument("--classes", default="10,100,1000", help="class counts for inference")
    n.add_argument("--concepts", type=POSITIVE, default=10, help="concepts per class for inference")
    n.add_argument("--batch-sizes", default="1,32")
    n.add_argument("--build-classes", default="10,100,1000")
    n.add_argument("--build-concepts", default="5,10,20,50")
    n.add_argument("--num-images", type=POSITIVE, default=32)
    n.add_argument("--repeats", type=POSITIVE, default=3)
    n.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess runs")
    n.add_argument(
        "--parts",
        default="inference,build,artifact",
        help="which parts to run (comma list; 'fewshot' adds SSP, 'segmentation' dense inference, "
        "'images' the decode path on normal and 12 MP photos, 'tta' TS^3's extra cost per image and its memory)",
    )
    n.add_argument("--fewshot-classes", type=POSITIVE, default=1000, help="classes of the few-shot part")
    n.add_argument("--fewshot-shots", default="1,4,16", help="support images per class to time fitting at")
    n.add_argument("--seg-classes", type=POSITIVE, default=150, help="segmentation: classes (default 150, ADE20K)")
    n.add_argument("--seg-short-sides", default="336,448", help="segmentation: short sides to time (default 336,448)")
    n.add_argument("--seg-images", type=POSITIVE, default=4, help="segmentation: images to time (default 4)")
    n.add_argument("--large-images", help="images part: photos to upscale to 12 MP (default: --images)")
    n.add_argument("--workers", type=NON_NEGATIVE, help="images part: image workers (default: the device's)")
    n.add_argument("--tta-classes", type=POSITIVE, default=1000, help="tta part: classes of the state (default 1000)")
    n.add_argument(
        "--tta-stream",
        type=POSITIVE,
        default=1000,
        help="tta part: N, the state's memory is read after N and 10N images",
    )
    n.set_defaults(func=run)
    return n


def run(args: argparse.Namespace) -> int:
    """Run the benchmark parts asked for."""
    bench = load_eval_module("bench")
    model, images = bench.locations(args.model, args.images)
    from s3_hf.models.loading import resolve_device

    device = resolve_device(args.device)
    dtypes = (
        args.dtypes.split(",")
        if args.dtypes
        else (["float32", "float16", "bfloat16"] if device != "cpu" else ["float32"])
    )
    cfg = bench.BenchConfig(
        model=model,
        images=images,
        out=args.out,
        device=device,
        classes=int_list(args.classes, "--classes"),
        concepts=args.concepts,
        batch_sizes=int_list(args.batch_sizes, "--batch-sizes"),
        build_classes=int_list(args.build_classes, "--build-classes"),
        build_concepts=int_list(args.build_concepts, "--build-concepts"),
        num_images=args.num_images,
        repeats=args.repeats,
        dtypes=dtypes,
        memory=not args.no_memory,
        parts=args.parts.split(","),
        fewshot_classes=args.fewshot_classes,
        fewshot_shots=int_list(args.fewshot_shots, "--fewshot-shots"),
        seg_classes=args.seg_classes,
        seg_short_sides=int_list(args.seg_short_sides, "--seg-short-sides", minimum=1),
        seg_images=args.seg_images,
        large_images=args.large_images,
        image_workers=args.workers,
        tta_classes=args.tta_classes,
        tta_stream=args.tta_stream,
    )
    bench.run(cfg)
    return 0
