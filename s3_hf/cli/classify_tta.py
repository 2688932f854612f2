"""``s3 classify --tta ts3``: test-time adaptation (TS^3) over the given images, in a stated, seeded order; and
``--tta zero``, the stateless ZERO-S^3 (each image's 64 seeded views vote; ``--tta-seed`` seeds the views).

The images (files, then each folder's images sorted by name, as given) are permuted by ``--tta-seed`` with a
dedicated generator, then adapted one after another in that order; each line shows the adapted top-1 beside the
static S^3 one. ``--tta-state FILE`` continues the stream saved in FILE when it exists (a state of other labels,
model, space or options is refused) and saves the state there at the end, so runs over new images keep adapting;
delete the file, or name another, to start afresh.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_hf.cli.arguments import NON_NEGATIVE
from s3_hf.cli.common import print_table
from s3_hf.errors import CLIUsageError, InvalidConfigError
from s3_hf.options import DEFAULT_STREAM_SEED
from s3_hf.tta import TS3Config, ZeroConfig

if TYPE_CHECKING:
    from s3_hf.engine.core import S3Engine
    from s3_hf.engine.requests import ClassifyRequest
    from s3_hf.engine.stream import TS3Stream

#: The test-time adaptation methods ``s3 classify --tta`` runs.
TTA_CHOICES: tuple[str, ...] = ("ts3", "zero")


def _flag(name: str) -> str:
    return "--tta-" + name.replace("_", "-")


def tta_args(p: argparse.ArgumentParser) -> None:
    """``--tta``, ``--tta-seed``, ``--tta-state`` and one ``--tta-<option>`` per :class:`TS3Config` option (its
    default shown, never written here)."""
    g = p.add_argument_group("test-time adaptation", "adapt over the images, in a seeded order (see --tta)")
    g.add_argument(
        "--tta",
        choices=TTA_CHOICES,
        help="ts3: adapt over the images with TS^3; zero: ZERO-S^3, votes of 64 views per image, stateless, about 64x "
        "the encoder's compute (default: no adaptation)",
    )
    g.add_argument(
        "--tta-seed",
        type=NON_NEGATIVE,
        metavar="N",
        help=f"ts3: seed of the order the images are adapted in; zero: of the views (default {DEFAULT_STREAM_SEED})",
    )
    g.add_argument(
        "--tta-state",
        metavar="FILE",
        help="continue the stream saved in FILE if it exists, and save the state there at the end",
    )
    for f in fields(TS3Config):
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            g.add_argument(_flag(f.name), action="store_true", default=None, help=f"TS^3 option {f.name}")
        else:
            kind = int if isinstance(default, int) else float
            g.add_argument(_flag(f.name), type=kind, metavar="X", help=f"TS^3 option {f.name} (default {default})")


@dataclass(frozen=True)
class StreamOptions:
    """``s3 classify``'s test-time adaptation: the method, the order's seed, the state file and TS^3's options."""

    method: str
    seed: int
    state: Path | None
    config: TS3Config

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StreamOptions | None:
        """The checked flags (``None`` without ``--tta``); every bad value is a one-line :class:`CLIUsageError`."""
        given = {f.name: getattr(args, f"tta_{f.name}", None) for f in fields(TS3Config)}
        given = {k: v for k, v in given.items() if v is not None}
        method = getattr(args, "tta", None)
        if method is None:
            extra = [_flag(k) for k in given] + [
                _flag(k) for k in ("seed", "state") if getattr(args, f"tta_{k}", None) is not None
            ]
            if extra:
                raise CLIUsageError(f"{', '.join(extra)} need --tta {TTA_CHOICES[0]}.")
            return None
        if getattr(args, "support", None) is not None:
            raise CLIUsageError("--tta adapts a zero-shot space: drop --support (few-shot) or --tta.")
        if method == "zero":
            stateful = [_flag(k) for k in given] + (["--tta-state"] if args.tta_state is not None else [])
            if stateful or getattr(args, "multi_label", False):
                flags = ", ".join(stateful or ["--multi-label"])
                raise CLIUsageError(f"{flags}: not with --tta zero (stateless votes, one class per view).")
        try:
            config = TS3Config(**given)
        except InvalidConfigError as err:
            raise CLIUsageError(f"--tta options: {err}") from err
        state = None if args.tta_state is None else Path(args.tta_state)
        if state is not None and state.is_dir():
            raise CLIUsageError(f"--tta-state {state} is a folder: name a file (it is created at the end).")
        seed = DEFAULT_STREAM_SEED if args.tta_seed is None else args.tta_seed
        return cls(method, seed, state, config)

    def zero(self) -> ZeroConfig:
        """ZERO-S^3's options: the defaults, views seeded by ``--tta-seed``."""
        return ZeroConfig(seed=self.seed)

    def order(self, n: int) -> list[int]:
        """The seeded order of ``n`` images: the same permutation for the same seed, on any machine."""
        import torch

        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()

    def open(self, engine: S3Engine, request: ClassifyRequest) -> TS3Stream:
        """The stream over ``request``'s classes, continuing the state file when it exists."""
        from s3_hf.tta import SavedState

        stream = engine.stream(request, tta=self.config)
        if self.state is not None and self.state.is_file():
            stream.load_state_dict(SavedState.load(self.state))
        return stream

    def save(self, stream: TS3Stream) -> None:
        """Write the stream's state to the state file (atomically), when one was named."""
        if self.state is not None:
            stream.state_dict().save(self.state)

    def record(self, names: list[str], resumed: int, seen: int) -> dict[str, Any]:
        """What ``--json`` states about the run: method, seed, order, options and the state file."""
        return {
            "method": self.method,
            "seed": self.seed,
            "order": names,
            "config": self.config.to_dict(),
            "config_hash": self.config.config_hash(),
            "state": None if self.state is None else str(self.state),
            "n_seen_before": resumed,
            "n_seen": seen,
        }


def add_zero(
    engine: S3Engine,
    results: list[dict[str, Any]],
    request: ClassifyRequest,
    config: ZeroConfig,
    top_k: int,
    abstain_threshold: float | None = None,
) -> None:
    """Add each read image's ZERO-S^3 ranking (``"zero"``) to :func:`compare`'s results."""
    from tqdm.auto import tqdm

    for r in tqdm(results, desc="ZERO-S^3", unit="image", disable=len(results) < 2):
        (ranked,) = engine.classify([r["image"]], request, top_k=top_k, tta=config, abstain_threshold=abstain_threshold)
        r["zero"] = [p.to_dict() for p in ranked]


def zero_report(results: list[dict[str, Any]], metric: str, as_json: bool, run: dict[str, Any]) -> None:
    """Print a ZERO-S^3 run: JSON (``{"tta": run, "results": ...}``), or per image the voted top-1 (with its vote
    fraction) beside the static S^3 one and CLIP's."""
    if as_json:
        print(json.dumps({"tta": run, "results": results}, indent=2))
        return
    print(f"ZERO-S^3: {run['views']} views per image, seeded by --tta-seed {run['seed']}; scores are vote fractions")
    rows = [
        {
            "image": r["image"],
            f"ZERO-S^3 ({metric})": f"{r['zero'][0]['label']} ({r['zero'][0]['score']:.2f})",
            f"S^3 ({metric})": f"{r['s3'][0]['label']} ({r['s3'][0]['score']:.2f})",
            "CLIP (label)": f"{r['clip'][0]['label']} ({r['clip'][0]['score']:.2f})",
        }
        for r in results
    ]
    print_table(rows, list(rows[0]))


def stream_report(results: list[dict[str, Any]], metric: str, as_json: bool, run: dict[str, Any]) -> None:
    """Print an adapted run: JSON (``{"tta": run, "results": ...}``), or its order and one line per image in stream
    order, the adapted top-1 beside the static S^3 one and CLIP's."""
    if as_json:
        print(json.dumps({"tta": run, "results": results}, indent=2))
        return
    resumed = f", continuing a state that had seen {run['n_seen_before']}" if run["n_seen_before"] else ""
    print(f"TS^3 over {len(results)} images in the order of --tta-seed {run['seed']}{resumed}:")
    rows = []
    for r in results:
        adapted, static, clip = r["ts3"][0], r["s3"][0], r["clip"][0]
        rows.append(
            {
                "step": str(r["step"]),
                "image": r["image"],
                f"TS^3 ({metric})": f"{adapted['label']} ({adapted['score']:.2f})",
                f"S^3 ({metric})": f"{static['label']} ({static['score']:.2f})",
                "CLIP (label)": f"{clip['label']} ({clip['score']:.2f})",
            }
        )
    print_table(rows, list(rows[0]))
    if run["state"] is not None:
        print(f"state saved to {run['state']} ({run['n_seen']} images seen)")


__all__ = ["TTA_CHOICES", "StreamOptions", "add_zero", "stream_report", "tta_args", "zero_report"]
