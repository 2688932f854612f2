"""The WordNet source over WordNet 3.0 (Debian's wordnet-base or nltk's download)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from helpers import SHARED

from s3_hf.errors import S3Error, WordNetMissingError
from s3_hf.synonyms import WordNetSource, write_synonyms_file
from s3_hf.synonyms.wordnet import lexnames_text, load_wordnet

IMAGENET = SHARED / "data" / "imagenet-sample" / "classes.tsv"


@pytest.fixture(scope="module")
def wn() -> WordNetSource:
    try:
        return WordNetSource()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):  # CI installs the corpus: these tests must run there
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")


def test_plain_label(wn):
    syn = wn.synonyms(["airplane"])["airplane"]
    assert "aeroplane" in syn and "plane" in syn


def test_wordnet_id(wn):
    assert wn.synonyms(["n01440764"])["n01440764"] == ["tench", "Tinca tinca"]


def test_senses_mapping_and_synset_names(wn):
    src = WordNetSource(senses={"crane": "crane.n.05", "lifting crane": "n03126707"})
    got = src.synonyms(["crane", "lifting crane"])
    assert got["crane"] == []  # the bird sense has the single lemma "crane"
    assert got["lifting crane"] == ["crane"]


def test_ambiguous_label_uses_one_sense_and_says_so(wn, caplog):
    """A bare "crane" has five noun senses (two writers, a constellation, a machine, a bird). They are never
    merged: one sense is used (the first with ambiguous="first") and a warning lists all of them with their ids."""
    with caplog.at_level(logging.WARNING):
        got = WordNetSource(ambiguous="first").synonyms(["crane"])["crane"]
    assert got == ["Stephen Crane"]
    text = caplog.text
    assert "5 WordNet noun senses" in text and "crane.n.05 02012849" in text and "crane.n.04 03126707" in text
    assert WordNetSource(ambiguous="label-only").synonyms(["crane"]) == {"crane": []}
    with pytest.raises(S3Error, match="noun senses"):
        WordNetSource(ambiguous="error").synonyms(["crane"])


def test_unknown_label_and_bad_id(wn):
    assert wn.synonyms(["blorfwidget"]) == {"blorfwidget": []}
    with pytest.raises(S3Error, match="no synset"):
        wn.synonyms(["n99999999"])


def test_repeated_labels_are_renamed_by_sense(wn):
    src = WordNetSource()
    out, senses = src.unique_labels(["missile", "missile", "tench"], ["n03773504", "n04008634", "n01440764"])
    assert out == ["missile", "projectile", "tench"]
    assert senses == {"missile": "n03773504", "projectile": "n04008634", "tench": "n01440764"}
    assert src.synonyms(out)["projectile"] == ["missile"]  # cleaning later drops it: it is another class's label


def test_missing_corpus_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("S3_WORDNET_DIR", str(tmp_path))
    load_wordnet.cache_clear()
    try:
        with pytest.raises(WordNetMissingError, match="apt-get install wordnet-base wordnet-sense-index"):
            WordNetSource()
        with pytest.raises(WordNetMissingError, match=r"nltk.download\('wordnet'\)"):
            WordNetSource(root=tmp_path)
    finally:
        load_wordnet.cache_clear()


@pytest.mark.skipif(not IMAGENET.is_file(), reason=f"{IMAGENET} is not available")
def test_imagenet_1k_synonyms_build(wn, tmp_path, tiny_model):
    from s3_hf import build_synonym_space
    from s3_hf.cli import read_label_table

    labels, ids = read_label_table(str(IMAGENET))
    assert len(labels) == 1000 and len(set(labels)) == 998  # CLIP's names repeat "missile" and "sunglasses"
    src = WordNetSource()
    labels, senses = src.unique_labels(labels, ids)
    assert len(set(labels)) == 1000 and senses["missile"] == "n03773504" and senses["projectile"] == "n04008634"
    syn = src.synonyms(labels)
    path = write_synonyms_file(tmp_path / "imagenet.yaml", syn, src.provenance())
    assert syn["tench"] == ["Tinca tinca"]
    space = build_synonym_space(*tiny_model, labels, path)
    assert space.num_classes == 1000 and space.classes[0].source["generated_by"]["name"] == "wordnet"
    assert Path(path).stat().st_size > 10_000


def test_lexnames_from_the_man_page_or_the_table(tmp_path):
    import gzip

    rows = lexnames_text().splitlines()
    assert len(rows) == 45 and rows[5] == "05\tnoun.animal\t1" and rows[29] == "29\tverb.body\t2"
    assert lexnames_text(tmp_path / "missing.gz") == lexnames_text()
    fake = tmp_path / "lexnames.5WN.gz"
    with gzip.open(fake, "wt") as f:
        f.write("".join(f"{i:02d}\tnoun.x{i}\tnouns\n" for i in range(45)))
    assert lexnames_text(fake).splitlines()[3] == "03\tnoun.x3\t1"
