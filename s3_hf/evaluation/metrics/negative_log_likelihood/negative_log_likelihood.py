"""Negative log-likelihood: the mean of -log p, p the probability a model gave each sample's true class."""

import math

import datasets
import evaluate

_DESCRIPTION = "Mean negative log-likelihood of the true class (natural log), probabilities clipped below at eps."
_KWARGS = """
Args:
    probabilities (list of float): per sample, the probability the model gave its true class, in [0, 1].
    eps (float): the smallest probability counted (default 1e-15), so that a zero gives a finite -log(eps).
Returns:
    negative_log_likelihood (float): >= 0 (NaN without samples).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class NegativeLogLikelihood(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"probabilities": datasets.Value("float64")}),
        )

    def _compute(self, probabilities, eps=1e-15):
        if not probabilities:
            return {"negative_log_likelihood": float("nan")}
        total = sum(-math.log(min(1.0, max(eps, p))) for p in probabilities)
        return {"negative_log_likelihood": total / len(probabilities)}
