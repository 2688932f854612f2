"""Synonyms from WordNet 3.0 through nltk: the lemmas of a label's noun synset.

A label may be a plain word ("airplane"), a WordNet id ("n01440764", as ImageNet uses) or a synset name
("crane.n.05"); ``senses={label: id}`` picks the sense for plain labels. A plain label with several noun
senses is never merged across senses. By default (``ambiguous="fit"``) it takes the sense that fits: senses that
are not instances (no "Stephen Crane" for "crane") and that name physical things are preferred, and among those the
one nearest the other labels (the deepest WordNet ancestor it shares with their senses: "crane" among herons and
storks is the bird, among forklifts the machine); a warning names the sense used and lists the others with the ids
that select them. ``ambiguous="first"`` takes the first (most frequent) sense, ``"label-only"`` gives the label no
synonyms and ``"error"`` raises. The sense used for each label is recorded in :meth:`WordNetSource.provenance`.

Corpus: ``nltk.download("wordnet")``, or on Debian/Ubuntu the packages ``wordnet-base`` and
``wordnet-sense-index`` (``/usr/share/wordnet``), read in place; nltk's ``lexnames`` file, which Debian does
not ship as a file, is derived from the ``lexnames(5WN)`` man page in ``wordnet-base``.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from s3_hf.errors import S3Error, WordNetMissingError
from s3_hf.synonyms.base import MAX_CONCEPTS
from s3_hf.text.distinct import distinct_labels

logger = logging.getLogger(__name__)

DEBIAN_DIRS = ("/usr/share/wordnet", "/usr/local/share/wordnet")
LEXNAMES_MAN = "/usr/share/man/man5/lexnames.5WN.gz"
INSTALL_HELP = (
    "WordNet 3.0 was not found. Install it with `sudo apt-get install wordnet-base wordnet-sense-index` "
    "(Debian/Ubuntu) or `python -c \"import nltk; nltk.download('wordnet')\"`, or point $S3_WORDNET_DIR at a "
    "folder holding WordNet's dict files (data.noun, index.noun, ...)."
)
_WNID = re.compile(r"^([nvar])(\d{8})$")
_SYNSET = re.compile(r"^.+\.[nvasr]\.\d+$")
_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
AMBIGUOUS = ("fit", "first", "label-only", "error")
_PHYSICAL = "physical_entity.n.01"


# WordNet 3.0's lexicographer files (lexnames(5WN)), used when the man page is not installed (slim images
# often drop /usr/share/man).
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
    "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity "
    "noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion "
    "verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()


def lexnames_text(man_page: str | os.PathLike = LEXNAMES_MAN) -> str:
    """nltk's ``lexnames`` file (``NN<TAB>name<TAB>category``), derived from the lexnames(5WN) man page of
    ``wordnet-base`` when it is installed, else from the same table kept here."""
    names = list(_LEXNAMES)
    try:
        text = gzip.open(man_page, "rt", encoding="utf-8").read()
        found = [name for _, name in re.findall(r"^(\d\d)\t(\S+)", text, re.M)]
        if len(found) == len(_LEXNAMES):
            names = found
    except OSError:
        pass
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(names))


def _reader_class() -> type:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class DebianWordNetReader(WordNetCorpusReader):
        """Reads Debian's dict folder in place; ``lexnames``, which Debian lacks, comes from the man page."""

        def __init__(self, root: str, lexnames: str) -> None:
            self._lexnames_text = lexnames
            super().__init__(root, None)

        def map_wn(self, version: str = "wordnet") -> None:
            return None  # the mapping to nltk's own WordNet copy only serves multilingual (OMW) lookups

        def open(self, file: str) -> Any:
            if file == "lexnames" and not os.path.isfile(os.path.join(str(self._root), "lexnames")):
                return io.StringIO(self._lexnames_text)
            return super().open(file)

    return DebianWordNetReader


def load_wordnet(root: str | None = None) -> Any:
    """An nltk ``WordNetCorpusReader`` over WordNet 3.0, from ``root``, $S3_WORDNET_DIR, nltk data or Debian."""
    return _load_wordnet(root, os.environ.get("S3_WORDNET_DIR") or None)


@lru_cache(maxsize=4)
def _load_wordnet(root: str | None, env_root: str | None) -> Any:
    """:func:`load_wordnet`, cached per location (a changed $S3_WORDNET_DIR is looked up again)."""
    try:
        import nltk
    except ImportError as err:
        raise WordNetMissingError(
            "The WordNet source reads WordNet through nltk, which is not installed: pip install 's3-hf[wordnet]'."
        ) from err

    candidates = [Path(p) for p in (root, env_root) if p]
    if not candidates:
        try:
            return nltk.corpus.wordnet.ensure_loaded() or nltk.corpus.wordnet
        except LookupError:
            candidates = [Path(d) for d in DEBIAN_DIRS]
    for folder in candidates:
        if not (folder / "data.noun").is_file() or not (folder / "index.noun").is_file():
            continue
        folder = folder.resolve()
        if str(folder) not in nltk.data.path:
            nltk.data.path.append(str(folder))  # nltk only reads corpora under its data paths
        lexnames = "" if (folder / "lexnames").is_file() else lexnames_text()
        with warnings.catch_warnings():  # "multilingual functions are not available": no OMW, none needed
            warnings.simplefilter("ignore", UserWarning)
            return _reader_class()(str(folder), lexnames)
    raise WordNetMissingError(INSTALL_HELP)


load_wordnet.cache_clear = _load_wordnet.cache_clear  # type: ignore[attr-defined]


class WordNetSource:
    """Lemmas of each label's noun synset (see the module docstring for how senses are chosen)."""

    name = "wordnet"

    def __init__(
        self,
        senses: Mapping[str, str] | None = None,
        ambiguous: str = "fit",
        max_synonyms: int = MAX_CONCEPTS,
        root: str | os.PathLike | None = None,
    ) -> None:
        if ambiguous not in AMBIGUOUS:
            raise ValueError(f"ambiguous must be one of {AMBIGUOUS}")
        self.senses = dict(senses or {})
        self.ambiguous = ambiguous
        self.max_synonyms = max_synonyms
        self.wn = load_wordnet(str(root) if root else None)
        self._date = datetime.now(UTC).isoformat(timespec="seconds")
        self._ancestors: dict[str, frozenset[str]] = {}
        self._depths: dict[str, int] = {}
        self._context: tuple[Counter[str], dict[str, Any]] | None = None
        #: label -> the name of the synset its synonyms came from (filled by :meth:`synonyms`).
        self.used: dict[str, str] = {}

    def provenance(self) -> dict[str, Any]:
        prov = {
            "name": self.name,
            "version": str(self.wn.get_version()),
            "ambiguous": self.ambiguous,
            "date": self._date,
        }
        if self.used:
            prov["senses"] = dict(self.used)
        return prov

    def _ancestor_names(self, synset: Any) -> frozenset[str]:
        """The synset and every hypernym above it (instance hypernyms too), by name."""
        name = synset.name()
        if name not in self._ancestors:
            above = synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())
            self._ancestors[name] = frozenset([name, *(s.name() for s in above)])
        return self._ancestors[name]

    def _depth(self, name: str) -> int:
        if name not in self._depths:
            self._depths[name] = self.wn.synset(name).min_depth()
        return self._depths[name]

    def _preferred(self, found: list[Any]) -> list[Any]:
        """Senses a photo can show, in WordNet's order: not instances (people, places by name), physical things."""
        common = [s for s in found if not s.instance_hypernyms()] or found
        return [s for s in common if _PHYSICAL in self._ancestor_names(s)] or common

    def _fit(self, label: str, found: list[Any]) -> Any:
        """The preferred sense of ``label`` nearest the other labels of the last :meth:`synonyms` call."""
        candidates = self._preferred(found)
        if self._context is None or len(candidates) == 1:
            return candidates[0]
        counts, refs = self._context
        own = self._ancestor_names(refs[label]) if label in refs else frozenset()

        def nearness(synset: Any) -> tuple[int, int]:
            shared = [(self._depth(a), counts[a] - (a in own)) for a in self._ancestor_names(synset)]
            return max([x for x in shared if x[1] > 0], default=(-1, 0))

        return max(candidates, key=nearness)  # max keeps the first of equals: WordNet's (frequency) order

    def _reference(self, label: str) -> Any | None:
        """A label's sense without context (an id, a given sense, or its first preferred noun sense)."""
        ref = self.senses.get(label, label).strip()
        if _WNID.match(ref) or _SYNSET.match(ref):
            try:
                return self.synset(label)
            except S3Error:
                return None
        found = self.wn.synsets(ref.replace(" ", "_"), pos="n")
        return self._preferred(found)[0] if found else None

    def synset(self, label: str) -> Any | None:
        """The synset for a label, a WordNet id or a synset name; ``None`` if WordNet does not know it."""
        from nltk.corpus.reader.wordnet import WordNetError

        ref = self.senses.get(label, label).strip()
        m = _WNID.match(ref)
        if m or _SYNSET.match(ref):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    found = (
                        self.wn.synset_from_pos_and_offset(m.group(1), int(m.group(2))) if m else self.wn.synset(ref)
                    )
            except (WordNetError, ValueError):
                found = None
            if found is None:
                raise S3Error(f"WordNet has no synset {ref!r} (given for {label!r}). Check the id.")
            return found
        found = self.wn.synsets(ref.replace(" ", "_"), pos="n")
        if not found:
            return None
        if len(found) > 1:
            senses = "; ".join(f"{s.name()} {s.offset():08d} ({s.definition()[:40]})" for s in found[:8])
            if self.ambiguous == "error":
                raise S3Error(
                    f"{label!r} has {len(found)} WordNet noun senses: {senses}. Give the label as one of these "
                    "ids (n01234567 or name.n.NN) or pass senses={label: id}."
                )
            if self.ambiguous == "label-only":
                logger.warning(
                    "%r has %d WordNet noun senses; giving it no synonyms. Senses: %s. Pick one with a WordNet id "
                    "or name.n.NN.",
                    label,
                    len(found),
                    senses,
                )
                return None
            chosen = found[0] if self.ambiguous == "first" else self._fit(label, found)
            logger.warning(
                "%r has %d WordNet noun senses; using %s (%s), %s. Senses: %s. Pick another with a WordNet id or "
                "name.n.NN.",
                label,
                len(found),
                chosen.name(),
                chosen.definition()[:40],
                "the first" if self.ambiguous == "first" else "the one that fits the other labels best",
                senses,
            )
            return chosen
        return found[0]

    def unique_labels(self, labels: Sequence[str], ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Make repeated labels distinct using their WordNet ids (ImageNet's CLIP names repeat "missile" and
        "sunglasses"): a later repeat takes the first lemma of its own synset that is not a label yet.
        Returns the new labels and sets ``self.senses`` to ``{label: id}`` for all of them."""

        def lemmas(i: int, label: str) -> list[str]:
            synset = self.synset(ids[i])
            return [x.replace("_", " ") for x in synset.lemma_names()] if synset is not None else []

        out = distinct_labels(labels, ids, lemmas)
        renamed = [f"{a!r} ({wnid}) -> {b!r}" for a, b, wnid in zip(labels, out, ids, strict=True) if a != b]
        if renamed:
            logger.warning("Renamed repeated labels: %s", ", ".join(renamed))
        self.senses = dict(zip(out, ids, strict=True))
        return out, self.senses

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        """The lemmas of each label's sense (see the module docstring), other than the label itself; records the
        sense used in :attr:`used`."""
        refs = {label: self._reference(label) for label in labels} if self.ambiguous == "fit" else {}
        counts: Counter[str] = Counter()
        for ref in refs.values():
            if ref is not None:
                counts.update(self._ancestor_names(ref))
        self._context = (counts, {k: v for k, v in refs.items() if v is not None})
        out = {}
        try:
            for label in labels:
                synset = self.synset(label)
                if synset is not None:
                    self.used[label] = synset.name()
                lemmas = [] if synset is None else [lemma.replace("_", " ") for lemma in synset.lemma_names()]
                out[label] = [x for x in lemmas if x.casefold() != label.casefold()][: self.max_synonyms]
        finally:
            self._context = None
        return out
