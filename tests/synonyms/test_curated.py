"""The curated synonym lists shipped with the package: one per benchmark of the registry, in the documented format,
and usable as a synonym source everywhere a source goes."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import SHARED

from s3_hf.cli import main
from s3_hf.errors import SynonymsError
from s3_hf.evaluation.data.registry import IMAGENET_SAMPLE, REGISTRY
from s3_hf.synonyms import CuratedSource, resolve_source
from s3_hf.synonyms.curated import ALIASES, CURATED_DIR, available, read_curated

FILES = sorted(p.stem for p in CURATED_DIR.glob("*.json"))


def test_every_registry_benchmark_has_a_list():
    assert set(REGISTRY) <= set(available())
    for name in REGISTRY:
        assert read_curated(name).entries, name
    assert ALIASES[IMAGENET_SAMPLE] == "imagenet1k"


@pytest.mark.parametrize("name", FILES)
def test_list_format_and_rules(name):
    data = json.loads((CURATED_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert data["benchmark"] == name and set(data) == {"benchmark", "provenance", "classes"}
    prov = data["provenance"]
    assert prov["written_by"] and prov["class_names"] and prov["rules"]
    lst = read_curated(name)
    labels = lst.labels
    folded = [lab.casefold() for lab in labels]
    if name != "imagenet1k":  # CLIP's ImageNet names repeat "missile" and "sunglasses" (two classes each)
        assert len(set(folded)) == len(folded), "every class is present once"
    others = set(folded)
    for e in lst.entries:
        assert len(e.synonyms) <= 10 and len(e.descriptors) <= 5, e.label
        seen = set()
        for s in e.synonyms:
            assert s == s.strip() and s and len(s.split()) <= 5, (e.label, s)
            assert s.casefold() not in others, f"{s!r} of {e.label!r} is a class label"
            assert s.casefold() not in seen, (e.label, s)
            seen.add(s.casefold())
        for d in e.descriptors:
            assert d.strip() and len(d.split()) <= 8, (e.label, d)
    assert sum(bool(e.synonyms) for e in lst.entries) >= 0.9 * len(labels)


@pytest.mark.skipif(
    not (SHARED / "data" / "imagenet-sample").is_dir(), reason="../shared/data/imagenet-sample is absent"
)
def test_imagenet_list_follows_the_clip_class_names():
    rows = (SHARED / "data" / "imagenet-sample" / "classes.tsv").read_text().splitlines()[1:]
    assert read_curated("imagenet1k").labels == [r.split("\t")[3] for r in rows]


def test_curated_source_everywhere_a_source_goes(tiny_model):
    source = resolve_source("curated:oxford-pets")
    assert isinstance(source, CuratedSource) and source.provenance()["benchmark"] == "oxford-pets"
    labels = read_curated("oxford-pets").labels[:3]
    loose = [labels[0].lower().replace(" ", "_"), *labels[1:]]  # names match case- and underscore-insensitively
    assert source.synonyms(loose)[loose[0]] == list(read_curated("oxford-pets").entries[0].synonyms)
    from s3_hf import build_synonym_space

    space = build_synonym_space(*tiny_model, labels, "curated:oxford-pets", descriptors=True)
    assert all(c.descriptors for c in space.classes) and space.classes[0].source["name"] == "curated"
    with pytest.raises(SynonymsError, match="No curated synonym list"):
        CuratedSource("no-such-benchmark")


def test_s3_synonyms_writes_a_curated_list(tmp_path, capsys):
    out = tmp_path / "pets.yaml"
    assert main(["synonyms", "--source", "curated", "--benchmark", "oxford-pets", "--out", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    lst = read_curated("oxford-pets")
    assert list(data["classes"]) == lst.labels and data["descriptors"][lst.labels[0]] == list(
        lst.entries[0].descriptors
    )
    assert data["provenance"]["name"] == "curated"
    assert main(["synonyms", "--source", "curated", "--out", str(out)]) == 2
    assert "--benchmark" in capsys.readouterr().err


def test_coverage_table_counts_curated_and_wordnet_synonyms(capsys):
    import os

    from s3_hf.errors import WordNetMissingError
    from s3_hf.evaluation import coverage

    try:
        rows = coverage.coverage()
    except WordNetMissingError as err:
        if os.environ.get("S3_REQUIRE_WORDNET"):
            raise
        pytest.skip(f"WordNet corpus not installed here ({err})")
    assert [r["benchmark"] for r in rows] == FILES
    for r in rows:
        lst = read_curated(str(r["benchmark"]))
        assert r["classes"] == len(lst.labels) and r["curated"] == sum(bool(e.synonyms) for e in lst.entries)
        assert 0 <= r["wordnet"] <= r["classes"]
    assert coverage.main([]) == 0 and "| imagenet1k | 1000 |" in capsys.readouterr().out
