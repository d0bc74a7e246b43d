"""Every documented bad input raises a clear exception."""

import numpy as np
import pytest
import torch

import rce_art as ra


@pytest.fixture(scope="module")
def clf(digits):
    torch.manual_seed(0)
    return ra.make_art_classifier(ra.SmallCNN(1, 10).eval(), digits.input_shape, 10, digits.clip_values)


@pytest.fixture(scope="module")
def fitted(clf, digits):
    return ra.KDensityDetector(clf, bandwidth=1.0, n_per_class=30).fit(digits.x_train, digits.y_train)


def test_detect_before_fit_raises_not_fitted(clf, digits):
    det = ra.KDensityDetector(clf)
    with pytest.raises(ra.NotFittedError, match="call fit"):
        det.detect(digits.x_test[:2])
    assert issubclass(ra.NotFittedError, ValueError) and issubclass(ra.NotFittedError, AttributeError)
    with pytest.raises(AttributeError, match="not fitted yet"):
        det.score(digits.x_test[:2])
    with pytest.raises(ra.NotFittedError):
        det.save("unused.safetensors")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(fitted, digits, bad):
    x = digits.x_test[:4].copy()
    x[1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.detect(x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ra.KDensityDetector(fitted.classifier).fit(x, np.arange(4))


def test_empty_batch(fitted):
    with pytest.raises(ValueError, match="empty batch"):
        fitted.detect(np.zeros((0, 1, 8, 8), np.float32))


def test_wrong_shape(fitted):
    with pytest.raises(ValueError, match=r"per-example shape \(8, 8\), expected \(1, 8, 8\)"):
        fitted.detect(np.zeros((3, 8, 8), np.float32))


def test_wrong_dtype_and_type(fitted):
    with pytest.raises(TypeError, match="floating dtype"):
        fitted.detect(np.zeros((3, 1, 8, 8), np.int64))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        fitted.detect([[0.0]])


def test_out_of_range_pixels(fitted):
    with pytest.raises(ValueError, match="outside clip_values"):
        fitted.detect(np.full((2, 1, 8, 8), 3.0, np.float32))


def test_labels_outside_range(clf, digits):
    y = digits.y_train.copy()
    y[5] = 10
    with pytest.raises(ValueError, match=r"labels outside \[0, 10\)"):
        ra.KDensityDetector(clf).fit(digits.x_train, y)
    y[5] = -1
    with pytest.raises(ValueError, match=r"labels outside \[0, 10\)"):
        ra.KDensityDetector(clf).fit(digits.x_train, y)


def test_label_length_mismatch(clf, digits):
    with pytest.raises(ValueError, match="must have shape"):
        ra.KDensityDetector(clf).fit(digits.x_train, digits.y_train[:-1])


def test_class_without_training_points(clf, digits):
    keep = digits.y_train != 7
    with pytest.raises(ValueError, match="class 7 has no training points"):
        ra.KDensityDetector(clf).fit(digits.x_train[keep], digits.y_train[keep])


def test_unknown_class_in_log_density(fitted):
    with pytest.raises(ValueError, match=r"labels outside \[0, 10\)"):
        fitted.log_density_features(torch.zeros(2, 64), torch.tensor([0, 12]))


@pytest.mark.parametrize("bw", [0, -1.0, float("nan"), "silverman"])
def test_bad_bandwidth(clf, bw):
    with pytest.raises(ValueError, match="bandwidth"):
        ra.KDensityDetector(clf, bandwidth=bw)


def test_other_bad_parameters(clf):
    with pytest.raises(ValueError, match="fpr"):
        ra.KDensityDetector(clf, fpr=1.5)
    with pytest.raises(ValueError, match="n_per_class"):
        ra.KDensityDetector(clf, n_per_class=0)
    with pytest.raises(TypeError, match="PyTorchClassifier or a torch.nn.Module"):
        ra.KDensityDetector("not a model")


def test_loss_and_metric_bad_inputs():
    z = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"labels outside \[0, 4\)"):
        ra.losses.reverse_cross_entropy(z, torch.tensor([0, 1, 4]))
    with pytest.raises(TypeError, match="integer class labels"):
        ra.losses.reverse_cross_entropy(z, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="empty batch"):
        ra.losses.reverse_cross_entropy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or infinite"):
        ra.losses.reverse_cross_entropy(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="reduction"):
        ra.losses.reverse_cross_entropy(z, torch.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="NaN or infinite"):
        ra.metrics.non_me(torch.tensor([[float("inf"), 0.0]]))
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        ra.metrics.confidence(torch.zeros(3))
