"""One rule for making repeated class names distinct, for every face and benchmark loader (no dependencies, so the
synonym sources and the text stage can both use it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def distinct_labels(
    labels: Sequence[str],
    tags: Sequence[str] | None = None,
    alternatives: Callable[[int, str], Sequence[str]] | None = None,
) -> list[str]:
    """Repeated labels made distinct (ImageNet's CLIP names repeat "missile", ADE20K's two "screen"s): the first
    occurrence keeps its name (equality up to case); a later repeat ``i`` takes the first of ``alternatives(i, label)``
    not taken yet, else ``"label (tag)"`` with ``tags[i]`` (default ``"class i"``).

    Args:
        labels: the class names in class order.
        tags: what tells repeats apart in their new names (e.g. WordNet ids); default the class index.
        alternatives: other names for a repeat (e.g. the lemmas of its own WordNet synset), or ``None``.
    """
    taken = {label.casefold() for label in labels}
    seen: set[str] = set()
    out = []
    for i, label in enumerate(labels):
        new = label
        if label.casefold() in seen:
            others = alternatives(i, label) if alternatives is not None else ()
            fallback = f"{label} ({tags[i] if tags else f'class {i}'})"
            new = next((x for x in others if x.casefold() not in taken), fallback)
            taken.add(new.casefold())
        seen.add(label.casefold())
        out.append(new)
    return out


__all__ = ["distinct_labels"]
