"""Expected calibration error (Guo et al., 2017): samples put into equal-width bins of their top probability;
the bins' gaps between accuracy and mean confidence, weighted by the share of samples in each bin."""

import math

import datasets
import evaluate

_DESCRIPTION = "Expected calibration error of top-1 predictions, equal-width bins on the top probability."
_KWARGS = """
Args:
    confidences (list of float): per sample, the probability of its top class, in [0, 1].
    predictions (list of int): per sample, its top class.
    references (list of int): per sample, the true class id.
    n_bins (int): how many equal-width bins cover [0, 1] (default 15). Bin i holds the confidences in
        (i / n_bins, (i + 1) / n_bins]; a confidence of exactly 0 goes to the first bin.
Returns:
    expected_calibration_error (float): sum over bins of |accuracy - mean confidence| * bin size / samples.
    bin_counts (list of int), bin_accuracy (list of float), bin_confidence (list of float): per bin (None for an
        empty bin's accuracy and confidence), for a reliability diagram.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "confidences": datasets.Value("float64"),
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, confidences, predictions, references, n_bins=15):
        counts = [0] * n_bins
        hits = [0] * n_bins
        sums = [0.0] * n_bins
        for conf, pred, ref in zip(confidences, predictions, references, strict=True):
            b = min(n_bins - 1, max(0, math.ceil(conf * n_bins) - 1))  # right-closed bins
            counts[b] += 1
            hits[b] += int(pred == ref)
            sums[b] += conf
        n = sum(counts)
        accuracy = [h / c if c else None for h, c in zip(hits, counts, strict=True)]
        confidence = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
        ece = sum(c / n * abs(a - m) for c, a, m in zip(counts, accuracy, confidence, strict=True) if c) if n else None
        return {
            "expected_calibration_error": float("nan") if ece is None else ece,
            "bin_counts": counts,
            "bin_accuracy": accuracy,
            "bin_confidence": confidence,
        }
