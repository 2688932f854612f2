"""Top-k accuracy: the share of samples whose reference is among the first k ranked predictions."""

import datasets
import evaluate

_DESCRIPTION = "Top-k accuracy of ranked class predictions."
_KWARGS = """
Args:
    predictions (list of list of int): per sample, class ids ranked best first (at least k of them).
    references (list of int): per sample, the true class id.
    k (int): how many ranked predictions count (default 1).
Returns:
    top_k_accuracy (float): in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=1):
        if not references:
            return {"top_k_accuracy": float("nan")}
        hits = sum(int(ref in list(pred)[:k]) for pred, ref in zip(predictions, references, strict=True))
        return {"top_k_accuracy": hits / len(references)}
