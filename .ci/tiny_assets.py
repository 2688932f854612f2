"""Write a tiny random CLIP checkpoint and a small real-photo image folder for the wheel check in .ci/run.

Run with the tests folder on the path (it reuses tests/helpers.py's ``make_tiny_clip``):
``PYTHONPATH=tests python .ci/tiny_assets.py OUT``; writes ``OUT/tiny-clip`` and ``OUT/images/<class>/<photo>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from helpers import make_tiny_clip
from PIL import Image
from skimage import data

PHOTOS = {"cat": ["chelsea", "cat"], "coffee": ["coffee"], "rocket": ["rocket"]}


def main(out: Path) -> None:
    make_tiny_clip(out / "tiny-clip")
    for label, names in PHOTOS.items():
        folder = out / "images" / label
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB").save(folder / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
