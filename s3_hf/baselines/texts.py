"""The texts of the descriptor and prompt baselines, and the public files they come in.

- DCLIP ("Visual Classification via Description from Large Language Models", Menon & Vondrick, ICLR 2023): per
  class a list of short visual descriptors; text ``"{label}, which (is/has/...) {descriptor}"``.
- CuPL ("What does a platypus look like?", Pratt et al., ICCV 2023): per class a list of free-form prompts.
- WaffleCLIP ("Waffling around for Performance", Roth et al., ICCV 2023): random descriptors, the same set for
  every class: pairs of random words and random character strings, both shaped by the dataset's class names (see
  :func:`waffle_shape`), appended to the label as DCLIP appends descriptors, optionally after a high-level concept
  (``"{concept}: a {label}, ..."``), inside WaffleCLIP's template ``"A photo of a {}."``.

DCLIP's released code (``sachit-menon/classify_by_description_release``, ``load.py``) puts no template around its
texts; WaffleCLIP's DCLIP runs (``ExplainableML/WaffleCLIP``, ``base_main.py``) use ``"A photo of a {}."``: both
are in :data:`DCLIP_TEMPLATES`.

DCLIP's and CuPL's files map a class name to a list of strings (JSON); :func:`match_class_texts` matches their
keys to a benchmark's class names and reports what did not match.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from s3_hf.errors import SynonymsError
from s3_hf.io.files import load_json_text, read_user_text

WORDS_FILE = Path(__file__).resolve().parent / "waffle_words.txt"
DEFAULT_WAFFLE_COUNT = 15  # pairs of descriptors (30 texts per class), WaffleCLIP's default
#: The seeds of WaffleCLIP's repeated draws: its README runs ``--reps=7`` and ``base_main.py`` seeds repetition
#: ``r`` with ``r``.
WAFFLE_SEEDS: tuple[int, ...] = tuple(range(7))
#: WaffleCLIP's prompt around every text (``base_main.py``: ``label_before_text="A photo of a "``,
#: ``label_after_text="."``).
WAFFLE_TEMPLATE = "A photo of a {}."
#: The template around DCLIP's texts, by name: ``"dclip"``, the released code's (none), and ``"waffle"``,
#: WaffleCLIP's DCLIP variant.
DCLIP_TEMPLATES = {"dclip": "{}", "waffle": WAFFLE_TEMPLATE}
DEFAULT_DCLIP_TEMPLATE = "dclip"
#: The template of a baseline's texts when none is given: DCLIP's released code's and WaffleCLIP's.
METHOD_TEMPLATES = {"dclip": DCLIP_TEMPLATES[DEFAULT_DCLIP_TEMPLATE], "waffle": WAFFLE_TEMPLATE}
_VERBS = ("has ", "often ", "typically ", "may ", "can ")


def descriptor_sentence(label: str, descriptor: str) -> str:
    """DCLIP's text for a descriptor: ``"{label}, which is a ..."`` for a descriptor that starts with an article
    or ``used``, ``"{label}, which has ..."`` for a noun phrase, ``"{label}, which can ..."`` for one that starts
    with a verb (``has``, ``often``, ``typically``, ``may``, ``can``).

    The words are matched whole. The released code tests bare prefixes (``startswith("a")``), so ``"antlers"``
    becomes ``"which is antlers"`` and ``"canopy"`` ``"which canopy"``; of the 10,183 published DCLIP descriptors
    92 read differently for that reason."""
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


def dclip_template(name: str) -> str:
    """The template around DCLIP's texts: a name of :data:`DCLIP_TEMPLATES` or a template with one ``{}``.

    Args:
        name: ``"dclip"`` (the released code: the text alone), ``"waffle"`` (``"A photo of a {}."``) or a template.
    """
    if name in DCLIP_TEMPLATES:
        return DCLIP_TEMPLATES[name]
    if isinstance(name, str) and name.count("{}") == 1 and "{" not in name.replace("{}", ""):
        return name
    raise SynonymsError(
        f"Unknown DCLIP template {name!r}: use one of {sorted(DCLIP_TEMPLATES)} or a template with one '{{}}'."
    )


@dataclass(frozen=True)
class WaffleShape:
    """The shape of WaffleCLIP's random descriptors for a dataset (``ExplainableML/WaffleCLIP``,
    ``waffle_tools.py``, mode ``waffle``).

    Attributes:
        words: random words per word descriptor: the class names' mean word count, rounded, at least 1.
        word_length: every random word is cut to this many characters: the mean over classes of a class name's
            mean word length, rounded.
        groups: groups of a character string: the class names' mean count of spaces, rounded, plus 1.
        group_length: characters per group: ``c + groups - c % groups`` split evenly over the groups, where ``c``
            is the mean over classes of a class name's longest word, rounded up.
        characters: the characters drawn from: those of the dataset's descriptors (or, without descriptors, of its
            class names) except whitespace, ``,`` and ``.`` (as published), and braces (texts go through
            ``str.format`` templates), sorted.
        source: ``"descriptors"`` or ``"labels"``: where the characters came from.
    """

    words: int
    word_length: int
    groups: int
    group_length: int
    characters: str
    source: str = "descriptors"

    @property
    def string_length(self) -> int:
        """Characters of a random string, ``", "`` separators included."""
        return self.groups * self.group_length + 2 * (self.groups - 1)


def _characters(texts: Iterable[str]) -> str:
    return "".join(sorted({c for t in texts for c in t if not c.isspace() and c not in ",.{}"}))


def waffle_shape(labels: Sequence[str], descriptors: Iterable[str] | None = None) -> WaffleShape:
    """The shape of WaffleCLIP's random descriptors for ``labels`` (see :class:`WaffleShape`).

    Args:
        labels: the dataset's class names (``_`` counts as a space in word counts and lengths, as published).
        descriptors: the dataset's descriptors (every class's); their characters make the random strings.
            ``None`` or no usable character: the class names' characters.
    """
    labels = [str(x) for x in labels]
    if not labels:
        raise SynonymsError("WaffleCLIP needs at least one class name.")
    spaced = [x.replace("_", " ").split(" ") for x in labels]
    # Python's round() rounds half to even, as numpy's np.round in the published code
    words = max(round(sum(len(w) for w in spaced) / len(spaced)), 1)
    word_length = max(round(sum(sum(len(y) for y in w) / len(w) for w in spaced) / len(spaced)), 1)
    groups = round(sum(x.count(" ") for x in labels) / len(labels)) + 1
    longest = math.ceil(sum(max(len(y) for y in x.split(" ")) for x in labels) / len(labels))
    group_length = (longest + groups - longest % groups) // groups
    characters, source = (_characters(descriptors), "descriptors") if descriptors is not None else ("", "labels")
    if not characters:
        characters, source = _characters(labels), "labels"
    if not characters:
        raise SynonymsError("WaffleCLIP's random strings need characters: no descriptor or class name has any.")
    return WaffleShape(words, word_length, groups, group_length, characters, source)


def waffle_descriptors(
    shape: WaffleShape, count: int = DEFAULT_WAFFLE_COUNT, seed: int = 0, words: Sequence[str] | None = None
) -> list[str]:
    """``2 * count`` random descriptors, shared by every class: ``count`` pairs of ``shape.words`` random words
    (each cut to ``shape.word_length`` characters) and a random string of ``shape.groups`` groups of
    ``shape.group_length`` characters joined by ``", "``. Deterministic for a seed.

    Args:
        shape: from :func:`waffle_shape`.
        count: pairs of descriptors.
        seed: the draw.
        words: the vocabulary (default: the shipped :func:`waffle_words`).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SynonymsError(f"waffle count must be a positive integer, got {count!r}.")
    rng = random.Random(f"waffle:{seed}")
    vocabulary = [w[: shape.word_length] for w in (words if words is not None else waffle_words())]
    out = []
    for _ in range(count):
        out.append(" ".join(rng.choice(vocabulary) for _ in range(shape.words)))
        groups = ("".join(rng.choice(shape.characters) for _ in range(shape.group_length)) for _ in range(shape.groups))
        out.append(", ".join(groups))
    return out


def waffle_texts(label: str, descriptors: Sequence[str], concept: str | None = None) -> list[str]:
    """WaffleCLIP's texts of a class: ``"{label}, which (is/has/...) {descriptor}"`` by the descriptor's form, as
    :func:`descriptor_sentence` (``"{concept}: a {label}, ..."`` with a high-level concept such as ``"food"``)."""
    head = label if not concept else f"{concept}: a {label}"
    return [descriptor_sentence(head, d) for d in descriptors]


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
    "DCLIP_TEMPLATES",
    "DEFAULT_DCLIP_TEMPLATE",
    "DEFAULT_WAFFLE_COUNT",
    "METHOD_TEMPLATES",
    "WAFFLE_SEEDS",
    "WAFFLE_TEMPLATE",
    "MatchReport",
    "WaffleShape",
    "dclip_template",
    "dclip_texts",
    "descriptor_sentence",
    "match_class_texts",
    "read_class_texts",
    "waffle_descriptors",
    "waffle_shape",
    "waffle_texts",
    "waffle_words",
]
