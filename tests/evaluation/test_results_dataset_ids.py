"""Per-benchmark results record where a Hub benchmark's data came from (dataset repo id and revision); files
written before these fields existed still load."""

from __future__ import annotations

from s3_hf.evaluation.results import BenchmarkResult, RunResult


def test_dataset_id_and_revision_round_trip_and_old_files_still_load():
    record = BenchmarkResult("toy", samples=3, classes=2, dataset_id="acme/wds_toy", dataset_revision="a" * 40)
    data = record.to_dict()
    assert data["dataset_id"] == "acme/wds_toy" and data["dataset_revision"] == "a" * 40
    again = BenchmarkResult.from_dict(data)
    assert (again.dataset_id, again.dataset_revision) == ("acme/wds_toy", "a" * 40)

    old = {k: v for k, v in data.items() if not k.startswith("dataset_")}
    loaded = RunResult.from_dict({"model": "m", "benchmarks": {"toy": old}}).benchmarks["toy"]
    assert loaded.dataset_id is None and loaded.dataset_revision is None and loaded.samples == 3
    local = BenchmarkResult.from_dict({**old, "dataset_id": None, "dataset_revision": ""})
    assert local.dataset_id is None and local.dataset_revision is None
