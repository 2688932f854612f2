"""Mean intersection over union, pixel accuracy and per-class IoU of semantic segmentation label maps."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = (
    "Per class c: IoU_c = TP / (TP + FP + FN) over the pixels whose reference is not ignore_index; mean IoU is the "
    "mean over classes that occur in the prediction or the reference (a class absent from both has no IoU: NaN, "
    "left out of the mean). Pixel accuracy is the share of those pixels predicted right."
)
_KWARGS = """
Args:
    predictions (list of 2D int arrays): per image, the predicted class id of each pixel.
    references (list of 2D int arrays): per image, the true class id of each pixel (ignore_index: not scored).
    num_labels (int): the number of classes.
    ignore_index (int): the reference value that is not scored (default 255).
    reduce_zero_label (bool): the ADE20K convention: reference 0 ("other") is ignored and 1..K become 0..K-1.
Returns:
    mean_iou (float), pixel_accuracy (float), mean_accuracy (float, mean per-class recall over classes present in
    the references), per_class_iou (list of float, NaN for absent classes), confusion (list of lists: rows are
    references, columns predictions).
"""


def confusion_matrix(prediction, reference, num_labels, ignore_index=255, reduce_zero_label=False):
    """``(num_labels, num_labels)`` counts of (reference, prediction) pixel pairs."""
    pred = np.asarray(prediction, dtype=np.int64).ravel()
    ref = np.asarray(reference, dtype=np.int64).ravel()
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference differ in size: {pred.shape} vs {ref.shape}")
    if reduce_zero_label:
        ref = np.where((ref == 0) | (ref == ignore_index), ignore_index, ref - 1)
    keep = (ref != ignore_index) & (ref >= 0) & (ref < num_labels)
    return np.bincount(ref[keep] * num_labels + pred[keep], minlength=num_labels**2).reshape(num_labels, num_labels)


def scores(confusion):
    """The metrics of a confusion matrix."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        recall = np.where(confusion.sum(1) > 0, tp / confusion.sum(1), np.nan)
    total = confusion.sum()
    return {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
        "per_class_iou": [float(x) for x in iou],
        "confusion": confusion.astype(np.int64).tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MeanIoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                }
            ),
        )

    # per-image use without building Arrow tables of pixels: sum confusion matrices, then score them once
    confusion_matrix = staticmethod(confusion_matrix)
    scores = staticmethod(scores)

    def _compute(self, predictions, references, num_labels, ignore_index=255, reduce_zero_label=False):
        total = np.zeros((num_labels, num_labels), dtype=np.int64)
        for pred, ref in zip(predictions, references, strict=True):
            total += confusion_matrix(pred, ref, num_labels, ignore_index, reduce_zero_label)
        return scores(total)
