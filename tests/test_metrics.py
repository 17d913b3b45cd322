"""The evaluation metrics against their references: scikit-learn's scores, skimage's SSIM."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from sklearn import metrics as skm

from vaegmm.metrics import confusion_matrix, classification_report, global_ssim, one_minus_mse, ssim


def test_classification_report_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y_true = rng.choice([-3, 4, 8, 1000], size=300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.choice([-3, 4, 8, 7], size=300))  # 7: never true; 1000: rarely predicted
    report = classification_report(y_true, y_pred)
    for average in ("macro", "micro"):
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            assert report[f"{name}_{average}"] == pytest.approx(fn(y_true, y_pred, average=average, zero_division=0))
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report["score"] == pytest.approx((report["f1_macro"] + report["f1_micro"]) / 2)
    classes = np.array([-3, 4, 8, 1000])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, classes), skm.confusion_matrix(y_true, y_pred, labels=classes))


def test_one_minus_mse():
    a, b = np.zeros((2, 3, 3)), np.full((2, 3, 3), 0.5)
    assert one_minus_mse(a, b) == pytest.approx(0.75)


@pytest.mark.parametrize("shape, window", [((28, 28), 7), ((8, 9), 7), ((5, 12), 5), ((6, 6), 5), ((3, 40), 3)])
def test_ssim_is_skimages_with_the_largest_window_that_fits(shape, window):
    rng = np.random.default_rng(1)
    a = rng.random((3, *shape))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    expected = np.mean([structural_similarity(x, y, data_range=1.0, win_size=window) for x, y in zip(a, b)])
    assert ssim(a, b) == pytest.approx(expected)


@pytest.mark.parametrize("shape", [(1, 20), (2, 2), (20, 2), (1, 1)])
def test_ssim_of_images_too_thin_for_a_window_uses_the_whole_image(shape):
    rng = np.random.default_rng(2)
    a = rng.random((4, *shape))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, a) == pytest.approx(1.0)
    # Wang et al.'s index computed for one pair by hand, with sample statistics
    x, y = a[0].ravel(), b[0].ravel()
    ddof = 1 if x.size > 1 else 0
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    cov = np.cov(x, y, ddof=ddof)[0, 1] if x.size > 1 else 0.0
    by_hand = ((2 * x.mean() * y.mean() + c1) * (2 * cov + c2)
               / ((x.mean() ** 2 + y.mean() ** 2 + c1) * (x.var(ddof=ddof) + y.var(ddof=ddof) + c2)))
    assert global_ssim(a[:1], b[:1])[0] == pytest.approx(by_hand)
    assert ssim(a, b) < 1.0
