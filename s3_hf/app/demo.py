"""The demo: real photos bundled with scikit-image, classified by S^3 and vanilla CLIP side by side."""

from __future__ import annotations

from PIL import Image

from s3_hf.errors import S3Error

# Hand-written synonym lists for the demo classes. "missile" (rocket) and "kettle" (teapot) are deliberately
# looser synonyms: S^3's persistence pruning may drop them, and `s3 inspect` shows it.
DEMO_SYNONYMS: dict[str, list[str]] = {
    "cat": ["domestic cat", "house cat", "kitty", "tabby cat", "feline"],
    "dog": ["domestic dog", "puppy", "hound", "canine", "pooch"],
    "cup of coffee": ["coffee", "espresso", "cappuccino", "latte", "mug of coffee"],
    "astronaut": ["spaceman", "cosmonaut", "space traveler", "spacewoman"],
    "rocket": ["space rocket", "launch vehicle", "rocket ship", "missile"],
    "photographer": ["cameraman", "camera operator", "lensman", "photog"],
    "airplane": ["aeroplane", "plane", "airliner", "jet", "aircraft"],
    "teapot": ["tea kettle", "kettle", "teakettle"],
}

# scikit-image sample photo -> its true class
DEMO_PHOTOS: dict[str, str] = {
    "chelsea": "cat",
    "coffee": "cup of coffee",
    "astronaut": "astronaut",
    "rocket": "rocket",
    "camera": "photographer",
}


def demo_photos() -> dict[str, Image.Image]:
    """The demo's photos as PIL images (they ship inside scikit-image, no download)."""
    try:
        from skimage import data
    except ImportError as err:
        raise S3Error("The demo photos come from scikit-image: pip install 's3-hf[demo]'.") from err
    return {name: Image.fromarray(getattr(data, name)()) for name in DEMO_PHOTOS}


__all__ = [
    "DEMO_PHOTOS",
    "DEMO_SYNONYMS",
    "demo_photos",
]
