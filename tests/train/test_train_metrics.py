"""Streamed metrics against values worked out by hand, fed in uneven batches."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepwise as dw
from deepwise.train import metrics as M

# 10 samples, 3 classes. Predicted classes [0,1,2,2,1,0,0,2,2,1], true classes [0,1,1,2,1,0,2,2,0,1].
# Confusion matrix (rows true, columns predicted): [[2,0,1],[0,3,1],[1,0,2]]; 7 of 10 correct.
PRED_CLS = np.array([0, 1, 2, 2, 1, 0, 0, 2, 2, 1])
TRUE = np.array([0, 1, 1, 2, 1, 0, 2, 2, 0, 1])
LOGITS = (np.eye(3)[PRED_CLS] * 2.0 + np.linspace(-0.3, 0.3, 30).reshape(10, 3)).astype(np.float32)
SPLITS = [4, 8]  # batches of 4, 4 and 2


def feed(metric, pred, target, weight=None, splits=SPLITS):
    metric.reset()
    parts = np.split(np.arange(len(pred)), splits)
    for idx in parts:
        w = None if weight is None else weight[idx]
        metric.update(dw.tensor(pred[idx]), dw.tensor(target[idx]), w)
    return metric.result()


def test_logits_encode_the_predicted_classes():
    np.testing.assert_array_equal(LOGITS.argmax(1), PRED_CLS)


def test_accuracy_multiclass_weighted_and_one_hot():
    assert feed(M.Accuracy(), LOGITS, TRUE) == pytest.approx(7 / 10)
    w = np.array([1, 1, 2, 1, 1, 1, 3, 1, 1, 1], dtype=np.float32)
    # wrong: samples 2 (w 2), 6 (w 3), 8 (w 1) -> 6 of total 13 wrong
    assert feed(M.Accuracy(), LOGITS, TRUE, w) == pytest.approx(7 / 13)
    one_hot = np.eye(3, dtype=np.float32)[TRUE]
    assert feed(M.Accuracy(), LOGITS, one_hot) == pytest.approx(7 / 10)


def test_accuracy_binary_threshold_and_logits():
    p = np.array([0.2, 0.7, 0.5, 0.9, 0.4], dtype=np.float32)
    t = np.array([0, 1, 1, 0, 0], dtype=np.float32)
    # predictions (> 0.5): 0 1 0 1 0 -> correct, correct, wrong, wrong, correct
    assert feed(M.Accuracy(), p, t, splits=[2, 4]) == pytest.approx(3 / 5)
    assert feed(M.Accuracy(threshold=0.45), p, t, splits=[3]) == pytest.approx(4 / 5)
    logits = np.log(p / (1 - p))
    assert feed(M.Accuracy(from_logits=True), logits.reshape(5, 1), t, splits=[3]) == pytest.approx(3 / 5)


def test_top_k_accuracy():
    scores = np.array([[3, 2, 1], [1, 2, 3], [0, 5, 1], [2, 1, 0], [1, 3, 2]], dtype=np.float32)
    t = np.array([1, 0, 2, 0, 0])
    # classes scoring strictly higher than the true one: 1, 2, 1, 0, 2
    assert feed(M.TopKAccuracy(2), scores, t, splits=[2]) == pytest.approx(3 / 5)
    assert feed(M.TopKAccuracy(1), scores, t, splits=[4]) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="k=5 but the predictions have only 3 classes"):
        feed(M.TopKAccuracy(5), scores, t)


def test_precision_recall_f1_macro_and_micro():
    # per class: precision 2/3, 3/3, 2/4; recall 2/3, 3/4, 2/3; f1 = 2tp/(pred+true) = 4/6, 6/7, 4/7
    assert feed(M.Precision(), LOGITS, TRUE) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert feed(M.Recall(), LOGITS, TRUE) == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert feed(M.F1Score(), LOGITS, TRUE) == pytest.approx((4 / 6 + 6 / 7 + 4 / 7) / 3)
    for cls in (M.Precision, M.Recall, M.F1Score):
        assert feed(cls(average="micro"), LOGITS, TRUE) == pytest.approx(7 / 10)


def test_precision_recall_binary_and_absent_classes():
    p = np.array([0.2, 0.7, 0.5, 0.9, 0.4], dtype=np.float32)
    t = np.array([0, 1, 1, 0, 0], dtype=np.float32)
    # positives predicted: samples 1, 3 (one right); actual positives: 1, 2 (one found)
    assert feed(M.Precision(), p, t, splits=[1]) == pytest.approx(1 / 2)
    assert feed(M.Recall(), p, t, splits=[1]) == pytest.approx(1 / 2)
    assert feed(M.F1Score(), p, t, splits=[1]) == pytest.approx(1 / 2)
    assert feed(M.Precision(average="macro"), p, t, splits=[1]) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # a class that never occurs (class 3 of 4) is left out of the macro average, as in scikit-learn
    logits4 = np.concatenate([LOGITS, np.full((10, 1), -9.0, np.float32)], axis=1)
    assert feed(M.Precision(), logits4, TRUE) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="target class 5 is out of range for 3 classes"):
        feed(M.Precision(), LOGITS, np.where(TRUE == 2, 5, TRUE))


def test_confusion_matrix_streamed_and_weighted():
    cm = M.ConfusionMatrix()
    feed(cm, LOGITS, TRUE)
    np.testing.assert_array_equal(cm.result(), [[2, 0, 1], [0, 3, 1], [1, 0, 2]])
    assert cm.result().dtype == np.int64 and not cm.scalar
    w = np.full(10, 0.5, dtype=np.float32)
    feed(cm, LOGITS, TRUE, w)
    np.testing.assert_allclose(cm.result(), np.array([[2, 0, 1], [0, 3, 1], [1, 0, 2]]) * 0.5)


def test_regression_metrics_uneven_batches():
    g = np.random.default_rng(0)
    pred = g.normal(size=(7, 2)).astype(np.float32)
    target = (pred + g.normal(scale=0.5, size=(7, 2))).astype(np.float32)
    d = pred.astype(np.float64) - target
    splits = [3, 6]
    assert feed(M.MeanAbsoluteError(), pred, target, splits=splits) == pytest.approx(np.abs(d).mean())
    assert feed(M.MeanSquaredError(), pred, target, splits=splits) == pytest.approx((d ** 2).mean())
    assert feed(M.RootMeanSquaredError(), pred, target, splits=splits) == pytest.approx(math.sqrt((d ** 2).mean()))
    t64 = target.astype(np.float64)
    r2 = 1 - (d ** 2).sum(0) / ((t64 - t64.mean(0)) ** 2).sum(0)
    assert feed(M.R2Score(), pred, target, splits=splits) == pytest.approx(r2.mean())
    w = np.array([1, 2, 0, 1, 3, 1, 1], dtype=np.float32)
    expected = (w[:, None] * d ** 2).sum() / (w.sum() * 2)
    assert feed(M.MeanSquaredError(), pred, target, w, splits=splits) == pytest.approx(expected)
    # (N,) targets for (N, 1) predictions
    mae = feed(M.MeanAbsoluteError(), pred[:, :1], target[:, 0], splits=splits)
    assert mae == pytest.approx(np.abs(d[:, 0]).mean())


def test_r2_constant_target():
    y = np.ones((4, 1), dtype=np.float32)
    assert feed(M.R2Score(), y, y, splits=[2]) == 1.0
    assert feed(M.R2Score(), y * 2, y, splits=[2]) == 0.0


def test_function_metric_is_averaged_by_batch_size():
    def first_mean(pred, target):
        return float(pred.numpy()[:, 0].mean())

    m = M.get(first_mean)
    assert m.name == "first_mean"
    assert feed(m, LOGITS, TRUE, splits=[7]) == pytest.approx(float(LOGITS[:, 0].astype(np.float64).mean()))
    with pytest.raises(TypeError, match="must return one number"):
        feed(M.get(lambda p, t: "x"), LOGITS, TRUE)


@pytest.mark.parametrize("make", [M.Accuracy, M.F1Score, M.R2Score, M.ConfusionMatrix, M.RootMeanSquaredError,
                                  lambda: M.TopKAccuracy(2)])
def test_state_dict_resumes_a_stream(make):
    is_reg = make in (M.R2Score, M.RootMeanSquaredError)
    target = LOGITS[:, ::-1].copy() if is_reg else TRUE
    full = make()
    expected = feed(full, LOGITS, target)
    first = make()
    first.update(dw.tensor(LOGITS[:4]), dw.tensor(target[:4]))
    first.update(dw.tensor(LOGITS[4:8]), dw.tensor(target[4:8]))
    second = make()
    second.load_state_dict(first.state_dict())
    second.update(dw.tensor(LOGITS[8:]), dw.tensor(target[8:]))
    np.testing.assert_allclose(second.result(), expected)


def test_binary_f1_state_keeps_the_binary_average():
    p = np.array([0.2, 0.7, 0.5, 0.9, 0.4], dtype=np.float32)
    t = np.array([0, 1, 1, 0, 0], dtype=np.float32)
    a = M.Precision()
    a.update(p[:3], t[:3])
    b = M.Precision()
    b.load_state_dict(a.state_dict())
    b.update(p[3:], t[3:])
    assert b.result() == pytest.approx(1 / 2)


def test_get_by_name():
    assert isinstance(M.get("acc"), M.Accuracy) and M.get("acc").name == "acc"
    assert M.get("top3_accuracy").k == 3 and M.get("top_k_accuracy").k == 5
    assert M.get("accuracy", loss="bce_with_logits").from_logits
    assert not M.get("accuracy", loss="cross_entropy").from_logits
    assert isinstance(M.get(M.R2Score), M.R2Score)
    for name, cls in (("mae", M.MeanAbsoluteError), ("mse", M.MeanSquaredError), ("rmse", M.RootMeanSquaredError),
                      ("r2", M.R2Score), ("f1", M.F1Score), ("precision", M.Precision), ("recall", M.Recall),
                      ("confusion_matrix", M.ConfusionMatrix)):
        assert type(M.get(name)) is cls
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        M.get("auc")
    with pytest.raises(TypeError, match="a metric must be"):
        M.get(3)


def test_empty_metric_results_are_nan():
    assert math.isnan(M.Accuracy().result())
    assert math.isnan(M.F1Score().result())
    assert math.isnan(M.R2Score().result())
