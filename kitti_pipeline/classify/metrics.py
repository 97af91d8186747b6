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
zero_division=0)` and `balanced_accuracy_score`; the tests check it.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows the true class, columns the predicted class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-class recall, precision, F1 and the macro and overall figures of a confusion matrix."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
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


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for mCA, mF1 and accuracy over test crops.

    Test crops are drawn with replacement `resamples` times; each draw's metrics are computed
    from its confusion matrix, and the (1 - level) / 2 and (1 + level) / 2 quantiles kept.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    draws = {"mCA": [], "mF1": [], "accuracy": []}
    for _ in range(resamples):
        idx = rng.integers(0, len(y_true), len(y_true))
        s = scores_from_confusion(confusion_matrix(y_true[idx], y_pred[idx], num_classes))
        for name in draws:
            draws[name].append(s[name])
    q = ((1 - level) / 2, (1 + level) / 2)
    return {name: tuple(float(v) for v in np.quantile(vals, q)) for name, vals in draws.items()}
