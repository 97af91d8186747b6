"""Classification metrics of the study, from a confusion matrix.

With C[i, j] the number of test crops of true class i predicted as class j:

    accuracy of class k (recall)  R_k = C[k, k] / sum_j C[k, j]
    precision of class k          P_k = C[k, k] / sum_i C[i, k]     (0 when nothing is predicted k)
    F1 of class k                 F_k = 2 P_k R_k / (P_k + R_k)     (0 when P_k + R_k = 0)
    mCA (mean class accuracy)     mean over k of R_k  (= macro recall, = balanced accuracy;
                                  a class with no test crops counts as R_k = 0)
    mPrecision, mF1               means over k of P_k, F_k  (macro averages)
    accuracy                      sum_k C[k, k] / sum C

These agree with scikit-learn's `precision_recall_fscore_support(average=None|"macro",
zero_division=0)`; the tests check it. When every class has test crops, mCA is also
`balanced_accuracy_score`; when one has none, scikit-learn leaves it out of the mean, where the
study's convention counts it 0 (`recall_score(..., labels=all, average="macro", zero_division=0)`).

Intervals come from a frame-level bootstrap (`core.bootstrap`): frames drawn with replacement,
each with all its crops, the same draws for every run (one seed), so that runs can be compared
draw by draw (`classify.compare`).
"""

from __future__ import annotations

import numpy as np

from kitti_pipeline.core.bootstrap import (
    BOOTSTRAP_SEED,
    frame_index,
    frame_resamples,
    percentile_interval,
)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows the true class, columns the predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def class_scores(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class recall, precision and F1 of confusion matrices (..., K, K), each (..., K):
    0 for a class with no crops, none predicted, or P + R = 0."""
    cms = np.asarray(cms, dtype=float)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    actual, predicted = cms.sum(-1), cms.sum(-2)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return recall, precision, f1


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-class recall, precision, F1 and the macro and overall figures of a confusion matrix."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    recall, precision, f1 = class_scores(cm)
    return {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "mCA": float(recall.mean()),
        "mPrecision": float(precision.mean()),
        "mF1": float(f1.mean()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
    }


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]
) -> dict:
    """The study's metrics (Tables 4 and 5) as a JSON-ready dict.

    Returns:
        `mCA, mF1, mPrecision, mRecall, accuracy`, `per_class: {class: {accuracy, precision, f1,
        support}}` and the confusion matrix as nested lists.
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    s = scores_from_confusion(cm)
    return {
        "mCA": s["mCA"],
        "mF1": s["mF1"],
        "mPrecision": s["mPrecision"],
        "mRecall": s["mCA"],
        "accuracy": s["accuracy"],
        "per_class": {
            name: {
                "accuracy": float(s["recall"][k]),
                "precision": float(s["precision"][k]),
                "f1": float(s["f1"][k]),
                "support": int(cm[k].sum()),
            }
            for k, name in enumerate(classes)
        },
        "confusion": cm.tolist(),
    }


def resampled_confusions(
    y_true: np.ndarray, y_pred: np.ndarray, frames: list[str], draws: np.ndarray, num_classes: int
) -> np.ndarray:
    """The confusion matrix of each draw, (R, K, K): the sum of its frames' matrices, each as
    often as the draw holds it."""
    names, index = frame_index(frames)
    per_frame = np.zeros((len(names), num_classes * num_classes))
    np.add.at(per_frame, (index, np.asarray(y_true) * num_classes + np.asarray(y_pred)), 1)
    return (draws @ per_frame).reshape(-1, num_classes, num_classes)


def macro_scores(cms: np.ndarray) -> dict[str, np.ndarray]:
    """mCA, mF1 and accuracy of each of a stack of confusion matrices (R, K, K), as
    `scores_from_confusion` gives them for one."""
    cms = np.asarray(cms, dtype=float)
    recall, _, f1 = class_scores(cms)
    correct = np.trace(cms, axis1=1, axis2=2)
    return {
        "mCA": recall.mean(1),
        "mF1": f1.mean(1),
        "accuracy": correct / np.maximum(cms.sum((1, 2)), 1),
    }


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    frames: list[str],
    num_classes: int,
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for mCA, mF1 and accuracy over test frames.

    Args:
        y_true, y_pred: Class ids of the test crops.
        frames: The frame of each crop. Give each crop a frame of its own for the crop-level
            bootstrap, which treats the crops as independent.
        num_classes: K.
        resamples: Draws (`core.bootstrap.frame_resamples`).
        seed: Their seed.
        level: The interval's coverage.
    """
    draws = frame_resamples(len(set(frames)), resamples, seed)
    scores = macro_scores(resampled_confusions(y_true, y_pred, frames, draws, num_classes))
    return {name: percentile_interval(values, level) for name, values in scores.items()}
