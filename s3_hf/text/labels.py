"""Class labels as every face takes them: normalised once, then checked (no torch, no model)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from s3_hf.errors import InvalidLabelsError
from s3_hf.synonyms.base import normalise


def check_labels(labels: Sequence[str]) -> list[str]:
    """The labels normalised (:func:`~s3_hf.synonyms.base.normalise`: NFC, no invisible formatting characters,
    whitespace and line breaks collapsed to one space). Rejects an empty list, non-strings, blank labels, control
    characters and labels equal after normalisation and case folding."""
    if isinstance(labels, str):
        raise InvalidLabelsError(f"candidate labels must be a list of strings, got the single string {labels!r}.")
    given = list(labels or [])
    if not given:
        raise InvalidLabelsError("No class labels given: pass at least one label, e.g. ['cat', 'dog'].")
    out: list[str] = []
    seen: dict[str, str] = {}
    for label in given:
        if not isinstance(label, str) or not normalise(label):
            shown = given if len(given) <= 20 else f"{len(given)} labels"
            raise InvalidLabelsError(f"Every label must be a non-empty string; got {label!r} in {shown}.")
        text = normalise(label)
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise InvalidLabelsError(f"Label {label!r} holds a control character: remove it.")
        key = text.casefold()
        if key in seen:
            raise InvalidLabelsError(
                f"Duplicate labels {seen[key]!r} and {label!r} (equal up to case, spacing and invisible characters):"
                " each class needs a distinct label. Merge them, or list one as a synonym of the other."
            )
        seen[key] = label
        out.append(text)
    return out


__all__ = ["check_labels"]
