"""The texts of the descriptor and prompt baselines, and the public files they come in.

- DCLIP ("Visual Classification via Description from Large Language Models", Menon & Vondrick, ICLR 2023): per
  class a list of short visual descriptors; text ``"{label}, which (is/has/...) {descriptor}"``.
- CuPL ("What does a platypus look like?", Pratt et al., ICCV 2023): per class a list of free-form prompts.
- WaffleCLIP ("Waffling around for Performance", Roth et al., ICCV 2023): random descriptors, the same set for
  every class: pairs of random words and random character sequences of the same length, appended to the label as
  DCLIP appends descriptors, optionally after a high-level concept (``"{concept}: a {label}, ..."``).

DCLIP's and CuPL's files map a class name to a list of strings (JSON); :func:`match_class_texts` matches their
keys to a benchmark's class names and reports what did not match.
"""

from __future__ import annotations

import os
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..errors import SynonymsError
from ..fileio import load_json_text, read_user_text

WORDS_FILE = Path(__file__).resolve().parent / "waffle_words.txt"
#: Characters of WaffleCLIP's random character sequences (no braces: texts go through ``str.format`` templates).
WAFFLE_CHARACTERS = string.ascii_letters + string.digits + "!#$%&()*+-./:;<=>?@[]^_|~"
DEFAULT_WAFFLE_COUNT = 15  # pairs of descriptors (30 texts per class), WaffleCLIP's default
_VERBS = ("has ", "often ", "typically ", "may ", "can ")


def descriptor_sentence(label: str, descriptor: str) -> str:
    """DCLIP's text for a descriptor: ``"{label}, which is a ..."`` for a descriptor that starts with an article
    or ``used``, ``"{label}, which has ..."`` for a noun phrase, ``"{label}, which can ..."`` for one that starts
    with a verb (``has``, ``often``, ``typically``, ``may``, ``can``)."""
    d = descriptor.strip()
    low = d.lower()
    if low.startswith(("a ", "an ", "used ")):
        return f"{label}, which is {d}"
    if low.startswith(_VERBS):
        return f"{label}, which {d}"
    return f"{label}, which has {d}"


def dclip_texts(label: str, descriptors: Sequence[str]) -> list[str]:
    """The DCLIP texts of a class; the label alone where it has no descriptor."""
    return [descriptor_sentence(label, d) for d in descriptors if d.strip()] or [label]


@cache
def waffle_words() -> tuple[str, ...]:
    """The vocabulary of WaffleCLIP's random words (shipped with the package; see the file's header)."""
    lines = WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(w for w in lines if w and not w.startswith("#"))


def waffle_descriptors(count: int = DEFAULT_WAFFLE_COUNT, seed: int = 0) -> list[str]:
    """``2 * count`` random descriptors, shared by every class: ``count`` pairs of two random words and a random
    character sequence of the same length. Deterministic for a seed."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SynonymsError(f"waffle count must be a positive integer, got {count!r}.")
    rng = random.Random(f"waffle:{seed}")
    words = waffle_words()
    out = []
    for _ in range(count):
        text = " ".join(rng.choice(words) for _ in range(2))
        out.append(text)
        out.append("".join(rng.choice(WAFFLE_CHARACTERS) for _ in range(len(text))))
    return out


def waffle_texts(label: str, descriptors: Sequence[str], concept: str | None = None) -> list[str]:
    """WaffleCLIP's texts of a class: ``"{label}, which has {descriptor}"`` (``"{concept}: a {label}, ..."``
    with a high-level concept such as ``"food"``)."""
    head = label if not concept else f"{concept}: a {label}"
    return [f"{head}, which has {d}" for d in descriptors]


# --------------------------------------------------------------------------------------------------- files
def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("_", " ")).strip().casefold()


@dataclass
class MatchReport:
    """How a file of per-class texts matched a benchmark's classes: ``matched`` labels, ``missing`` labels (no
    entry; they fall back to the label alone), ``unused`` file keys (matching no class), ``empty`` labels whose
    entry is an empty list."""

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.matched)} classes matched"]
        if self.missing:
            parts.append(f"{len(self.missing)} without an entry ({', '.join(self.missing[:5])}...)")
        if self.empty:
            parts.append(f"{len(self.empty)} with an empty list ({', '.join(self.empty[:5])})")
        if self.unused:
            parts.append(f"{len(self.unused)} file keys unused ({', '.join(self.unused[:5])})")
        return "; ".join(parts)


def read_class_texts(source: Mapping[str, Sequence[str]] | str | os.PathLike, what: str) -> dict[str, list[str]]:
    """A mapping ``{class name: [text, ...]}`` from a mapping or a JSON file (DCLIP's and CuPL's format)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise SynonymsError(f"{what} file {path} does not exist. Pass a JSON file {{class: [text, ...]}}.")
        text = read_user_text(path, SynonymsError, f"{what} file")
        source = load_json_text(text, SynonymsError, f"{what} file {path}", "Pass a JSON file {class: [text, ...]}.")
    if not isinstance(source, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v) for k, v in source.items()
    ):
        raise SynonymsError(f"{what} must map each class name to a list of strings.")
    return {k: list(v) for k, v in source.items()}


def match_class_texts(
    texts: Mapping[str, Sequence[str]], labels: Sequence[str]
) -> tuple[dict[str, list[str]], MatchReport]:
    """``texts`` keyed by ``labels``: exact names first, then case-, underscore- and whitespace-insensitively.
    Returns the matched mapping (labels without an entry get none) and a :class:`MatchReport`."""
    exact = {k: list(v) for k, v in texts.items()}
    loose: dict[str, str] = {}
    for k in texts:
        loose.setdefault(_key(k), k)
    out: dict[str, list[str]] = {}
    used: set[str] = set()
    report = MatchReport()
    for label in labels:
        key = label if label in exact else loose.get(_key(label))
        if key is None or (key in used and key != label):
            report.missing.append(label)
            continue
        used.add(key)
        out[label] = exact[key]
        (report.matched if exact[key] else report.empty).append(label)
    report.unused = [k for k in texts if k not in used]
    return out, report


__all__ = [
    "DEFAULT_WAFFLE_COUNT",
    "MatchReport",
    "dclip_texts",
    "descriptor_sentence",
    "match_class_texts",
    "read_class_texts",
    "waffle_descriptors",
    "waffle_texts",
    "waffle_words",
]
