"""Calibration in s3 eval: the project's ECE and NLL metric modules against hand computations, the engine's
probabilities they are fed, and the typed records that carry them into results.json."""

import math

import pytest
import torch

from s3_hf.evaluation.classification import calibration, calibration_inputs, load_metric
from s3_hf.evaluation.results import MethodScores, Reliability, RunResult


def test_ece_matches_a_hand_computation():
    ece = load_metric("expected_calibration_error")
    # 15 bins, right-closed: 0.9 -> bin 13, 0.8 (= 12/15) -> bin 11, 0.3 -> bin 4, 1/15 and 0.0 -> bin 0
    got = ece.compute(
        confidences=[0.9, 0.8, 0.3, 1 / 15, 0.0], predictions=[1, 2, 3, 0, 0], references=[1, 0, 3, 0, 1], n_bins=15
    )
    by_hand = 2 / 5 * abs(0.5 - (1 / 15) / 2) + 1 / 5 * abs(1 - 0.3) + 1 / 5 * abs(0 - 0.8) + 1 / 5 * abs(1 - 0.9)
    assert got["expected_calibration_error"] == pytest.approx(by_hand, abs=1e-12)
    assert got["bin_counts"] == [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]
    assert got["bin_accuracy"][0] == 0.5 and got["bin_accuracy"][1] is None
    assert got["bin_confidence"][13] == pytest.approx(0.9)


def test_ece_is_zero_when_confidence_equals_accuracy():
    ece = load_metric("expected_calibration_error")
    got = ece.compute(confidences=[0.5] * 4, predictions=[0, 1, 0, 1], references=[0, 1, 1, 0])
    assert got["expected_calibration_error"] == pytest.approx(0.0, abs=1e-12) and sum(got["bin_counts"]) == 4


def test_nll_matches_a_hand_computation():
    nll = load_metric("negative_log_likelihood")
    got = nll.compute(probabilities=[0.5, 0.25, 1.0])["negative_log_likelihood"]
    assert got == pytest.approx((math.log(2) + math.log(4) + 0.0) / 3, abs=1e-12)
    clipped = nll.compute(probabilities=[0.0])["negative_log_likelihood"]
    assert clipped == pytest.approx(-math.log(1e-15))  # a zero counts as eps, not as infinity


def test_calibration_uses_the_familys_own_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    softmax = calibration_inputs(logits, "softmax", [0, 2])
    p = logits.double().softmax(-1)
    assert softmax["confidences"] == pytest.approx(p.max(-1).values.tolist())
    assert softmax["predictions"] == [0, 1]
    assert softmax["probabilities"] == pytest.approx([p[0, 0].item(), p[1, 2].item()])
    sigmoid = calibration_inputs(logits, "sigmoid", [0, 2])
    assert sigmoid["probabilities"] == pytest.approx([1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-1.0))])
    ece, nll, bins = calibration(logits, "softmax", [0, 2])
    assert nll == pytest.approx(-(math.log(p[0, 0].item()) + math.log(p[1, 2].item())) / 2)
    assert sum(bins.counts) == 2 and len(bins.counts) == 15 and 0 <= ece <= 1


def test_method_scores_round_trip_with_calibration_and_read_old_files():
    bins = Reliability([1, 0], [1.0, None], [0.75, None])
    scores = MethodScores(0.5, 0.9, 0.5, ece=0.25, nll=0.7, reliability=bins)
    data = scores.to_dict()
    assert list(data)[:3] == ["top1", "top5", "mean_per_class"] and data["ece"] == 0.25 and data["nll"] == 0.7
    assert MethodScores.from_dict(data) == scores
    old = MethodScores.from_dict({"top1": 0.5, "top5": 0.9, "mean_per_class": 0.5})
    assert old.ece is None and old.nll is None and old.reliability is None
    assert set(old.to_dict()) == {"top1", "top5", "mean_per_class", "wins_vs_label", "losses_vs_label"}


def test_report_writes_calibration_columns_and_a_reliability_diagram(tmp_path):
    from s3_hf.evaluation.report import markdown, reliability_figure

    bins = {"counts": [2, 1], "accuracy": [0.5, 1.0], "confidence": [0.4, 0.9]}
    method = {"top1": 0.6, "ece": 0.125, "nll": 0.6931, "reliability": bins}
    summary = RunResult.from_dict({"model": "m", "benchmarks": {"toy": {"samples": 3, "methods": {"label": method}}}})
    table = markdown(summary)
    assert "| benchmark | method | top-1 (%) | ECE (%) | NLL |" in table
    assert "| toy | label | 60.00 | 12.50 | 0.6931 |" in table
    path = tmp_path / "reliability.png"
    assert reliability_figure(summary, path) == path and path.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reliability.png"]  # written atomically, no temporary left
    assert reliability_figure(RunResult.from_dict({"benchmarks": {}}), tmp_path / "none.png") is None
