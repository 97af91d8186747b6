import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    precision_recall_fscore_support,
    recall_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from kitti_pipeline.classify.metrics import (
    bootstrap_intervals,
    classification_metrics,
    confusion_matrix,
)

CLASSES = ("Car", "Person", "Cyclist")


def test_by_hand():
    # true:      Car Car Car Car Person Person Cyclist
    # predicted: Car Car Car Person Person Car Person
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 1])
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 1, 0]]
    # recall: Car 3/4, Person 1/2, Cyclist 0/1 -> mCA = (0.75 + 0.5 + 0) / 3
    assert m["mCA"] == pytest.approx(1.25 / 3)
    # precision: Car 3/4, Person 1/3, Cyclist 0 (never predicted)
    assert m["mPrecision"] == pytest.approx((0.75 + 1 / 3) / 3)
    # F1: Car 0.75, Person 2 * (1/3 * 1/2) / (1/3 + 1/2) = 0.4, Cyclist 0
    assert m["mF1"] == pytest.approx((0.75 + 0.4) / 3)
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["per_class"]["Person"] == pytest.approx(
        {"accuracy": 0.5, "precision": 1 / 3, "f1": 0.4, "support": 2}
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(3, size=200, p=[0.8, 0.15, 0.05])
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.choice(3, size=200))
    m = classification_metrics(y_true, y_pred, CLASSES)
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0
    )
    macro = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0
    )
    assert m["mPrecision"] == pytest.approx(macro[0])
    assert m["mRecall"] == pytest.approx(macro[1])
    assert m["mF1"] == pytest.approx(macro[2])
    assert m["mCA"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for k, name in enumerate(CLASSES):
        assert m["per_class"][name]["accuracy"] == pytest.approx(r[k])
        assert m["per_class"][name]["precision"] == pytest.approx(p[k])
        assert m["per_class"][name]["f1"] == pytest.approx(f[k])
        assert m["per_class"][name]["support"] == support[k]
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, 3), sk_confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    )


def test_class_never_predicted_scores_zero_like_scikit_learn():
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["per_class"]["Cyclist"]["precision"] == 0.0
    assert m["mF1"] == pytest.approx(
        precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[2]
    )


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    y_true = rng.choice(3, size=300, p=[0.8, 0.15, 0.05])
    y_pred = np.where(rng.random(300) < 0.8, y_true, rng.choice(3, size=300))
    point = classification_metrics(y_true, y_pred, CLASSES)
    frames = [f"f{k // 5}" for k in range(300)]
    ci = bootstrap_intervals(y_true, y_pred, frames, 3, resamples=300, seed=0)
    for name in ("mCA", "mF1", "accuracy"):
        low, high = ci[name]
        assert low < point[name] < high
    assert ci == bootstrap_intervals(y_true, y_pred, frames, 3, resamples=300, seed=0)
    perfect = bootstrap_intervals(y_true, y_true, frames, 3, resamples=50, seed=0)
    assert perfect["accuracy"] == (1.0, 1.0)


def test_a_class_without_test_crops_counts_zero_where_balanced_accuracy_drops_it():
    """The study's mCA averages over every class, 0 for one with no test crops; scikit-learn's
    balanced_accuracy_score averages over the classes present. Three Cars (one taken for a
    Cyclist) and two Persons, no Cyclist crops: recalls (2/3, 1, 0) give mCA 5/9, balanced
    accuracy (2/3 + 1) / 2 = 5/6."""
    y_true = np.array([0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 2, 1, 1])
    m = classification_metrics(y_true, y_pred, CLASSES)
    assert m["mCA"] == pytest.approx(5 / 9)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        assert balanced_accuracy_score(y_true, y_pred) == pytest.approx(5 / 6)
    assert m["mCA"] == pytest.approx(
        recall_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )
