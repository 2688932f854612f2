"""Synonyms from WordNet 3.0 through nltk: the lemmas of a label's noun synset.

A label may be a plain word ("airplane"), a WordNet id ("n01440764", as ImageNet uses) or a synset name
("crane.n.05"); ``senses={label: id}`` picks the sense for plain labels. A plain label with several noun
senses is never merged across senses: by default its first (most frequent) sense is used and a warning lists
the others with the ids that select them; ``ambiguous="label-only"`` gives it no synonyms and
``ambiguous="error"`` raises.

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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import S3Error, WordNetMissingError
from .base import MAX_CONCEPTS

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


@lru_cache(maxsize=4)
def load_wordnet(root: str | None = None) -> Any:
    """An nltk ``WordNetCorpusReader`` over WordNet 3.0, from ``root``, $S3_WORDNET_DIR, nltk data or Debian."""
    try:
        import nltk
    except ImportError as err:
        raise WordNetMissingError(
            "The WordNet source reads WordNet through nltk, which is not installed: pip install 's3-hf[wordnet]'."
        ) from err

    candidates = [Path(p) for p in (root, os.environ.get("S3_WORDNET_DIR")) if p]
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


class WordNetSource:
    """Lemmas of each label's noun synset (see the module docstring for how senses are chosen)."""

    name = "wordnet"

    def __init__(
        self,
        senses: Mapping[str, str] | None = None,
        ambiguous: str = "first",
        max_synonyms: int = MAX_CONCEPTS,
        root: str | os.PathLike | None = None,
    ) -> None:
        if ambiguous not in ("first", "label-only", "error"):
            raise ValueError("ambiguous must be 'first', 'label-only' or 'error'")
        self.senses = dict(senses or {})
        self.ambiguous = ambiguous
        self.max_synonyms = max_synonyms
        self.wn = load_wordnet(str(root) if root else None)
        self._date = datetime.now(UTC).isoformat(timespec="seconds")

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.wn.get_version()),
            "ambiguous": self.ambiguous,
            "date": self._date,
        }

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
            logger.warning(
                "%r has %d WordNet noun senses; %s. Senses: %s. Pick one with a WordNet id or name.n.NN.",
                label,
                len(found),
                "using the first" if self.ambiguous == "first" else "giving it no synonyms",
                senses,
            )
            if self.ambiguous == "label-only":
                return None
        return found[0]

    def unique_labels(self, labels: Sequence[str], ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """Make repeated labels distinct using their WordNet ids (ImageNet's CLIP names repeat "missile" and
        "sunglasses"): a later repeat takes the first lemma of its own synset that is not a label yet.
        Returns the new labels and sets ``self.senses`` to ``{label: id}`` for all of them."""
        taken = {label.casefold() for label in labels}
        seen: set[str] = set()
        out, renamed = [], []
        for label, wnid in zip(labels, ids, strict=True):
            new = label
            if label.casefold() in seen:
                synset = self.synset(wnid)
                lemmas = [x.replace("_", " ") for x in synset.lemma_names()] if synset is not None else []
                new = next((x for x in lemmas if x.casefold() not in taken), f"{label} ({wnid})")
                taken.add(new.casefold())
                renamed.append(f"{label!r} ({wnid}) -> {new!r}")
            seen.add(label.casefold())
            out.append(new)
        if renamed:
            logger.warning("Renamed repeated labels: %s", ", ".join(renamed))
        self.senses = dict(zip(out, ids, strict=True))
        return out, self.senses

    def synonyms(self, labels: Sequence[str]) -> dict[str, list[str]]:
        out = {}
        for label in labels:
            synset = self.synset(label)
            lemmas = [] if synset is None else [lemma.replace("_", " ") for lemma in synset.lemma_names()]
            out[label] = [x for x in lemmas if x.casefold() != label.casefold()][: self.max_synonyms]
        return out
