"""Prompt templates: a single template, a list, or a named set such as CLIP's 80 ImageNet prompts."""

from __future__ import annotations

from collections.abc import Sequence

from s3_hf.errors import TemplateError

DEFAULT_TEMPLATE = "This is a photo of {}."  # transformers' zero-shot-image-classification default

# The 80 ImageNet prompts of Radford et al. (2021), "Learning Transferable Visual Models From Natural
# Language Supervision", as used by CLIP's zero-shot ImageNet evaluation.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

# The 7-prompt subset of the above that Radford et al. found to work best together on ImageNet.
IMAGENET7_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "imagenet80": IMAGENET_TEMPLATES,
    "imagenet7": IMAGENET7_TEMPLATES,
    "simple": ("a photo of a {}.",),
    "default": (DEFAULT_TEMPLATE,),
}


def resolve_templates(templates: str | Sequence[str] | None) -> list[str]:
    """Turn a template, a list of templates or a set name (``"imagenet80"``) into a checked list.

    Each template must contain exactly one ``{}`` placeholder.
    """
    if templates is None:
        templates = [DEFAULT_TEMPLATE]
    elif isinstance(templates, str):
        templates = list(TEMPLATE_SETS[templates]) if templates in TEMPLATE_SETS else [templates]
    templates = list(templates)
    if not templates:
        raise TemplateError(
            "No prompt templates given. Pass a template such as 'a photo of a {}.', a list of them, "
            f"or one of the named sets {sorted(TEMPLATE_SETS)}."
        )
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1 or not _formats(t):
            raise TemplateError(
                f"Template {t!r} must be a string with exactly one '{{}}' placeholder for the class text and no "
                f"other fields (write literal braces as '{{{{' and '}}}}'), e.g. 'a photo of a {{}}.', or one of the "
                f"named sets {sorted(TEMPLATE_SETS)}."
            )
    return templates


def _formats(template: str) -> bool:
    try:
        template.format("x")
    except (KeyError, IndexError, ValueError):
        return False
    return True


__all__ = [
    "DEFAULT_TEMPLATE",
    "IMAGENET7_TEMPLATES",
    "IMAGENET_TEMPLATES",
    "TEMPLATE_SETS",
    "resolve_templates",
]
