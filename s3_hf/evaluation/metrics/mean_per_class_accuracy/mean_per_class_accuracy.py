"""Mean per-class accuracy: the accuracy of each class present in the references, averaged over classes."""

import datasets
import evaluate

_DESCRIPTION = "Mean per-class accuracy (balanced accuracy) over the classes that occur in the references."
_KWARGS = """
Args:
    predictions (list of int): per sample, the predicted class id.
    references (list of int): per sample, the true class id.
Returns:
    mean_per_class_accuracy (float): in [0, 1].
    per_class_accuracy (dict of int to float): accuracy of each class present.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MeanPerClassAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        totals, hits = {}, {}
        for pred, ref in zip(predictions, references, strict=True):
            totals[ref] = totals.get(ref, 0) + 1
            hits[ref] = hits.get(ref, 0) + int(pred == ref)
        per_class = {c: hits[c] / totals[c] for c in sorted(totals)}
        mean = sum(per_class.values()) / len(per_class) if per_class else float("nan")
        return {"mean_per_class_accuracy": mean, "per_class_accuracy": per_class}
