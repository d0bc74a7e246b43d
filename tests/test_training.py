import numpy as np
import pytest
import torch
from art.defences.trainer import Trainer
from art.estimators.classification import PyTorchClassifier

import rce_art as ra
from rce_art.training import piecewise_lr


def test_piecewise_schedule_has_the_papers_shape():
    # MNIST: lr 0.1 until 10k of 20k steps, 0.01 until 15k, then 0.001
    assert [piecewise_lr(s, 20000, (0.5, 0.75), 0.1) for s in (0, 9999, 10000, 14999, 15000, 19999)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_trainers_are_art_trainers_and_return_art_classifiers(ce_trainer, rce_trainer):
    for t in (ce_trainer, rce_trainer):
        assert isinstance(t, Trainer)
        assert isinstance(t.get_classifier(), PyTorchClassifier)
    assert isinstance(rce_trainer.get_model(), ra.ReverseLogits)


def _accuracy_and_non_me(trainer, digits):
    clf = trainer.get_classifier()
    logits = torch.as_tensor(clf.predict(digits.x_test))
    return float((logits.argmax(1).numpy() == digits.y_test).mean()), float(ra.metrics.non_me(logits).mean())


def test_rce_accuracy_close_to_ce_and_non_me_higher(digits, ce_trainer, rce_trainer):
    acc_ce, nme_ce = _accuracy_and_non_me(ce_trainer, digits)
    acc_rce, nme_rce = _accuracy_and_non_me(rce_trainer, digits)
    assert acc_ce > 0.95
    assert abs(acc_rce - acc_ce) <= 0.02
    assert nme_rce > nme_ce
    assert nme_rce > 0.9 * np.log(9)  # close to the maximum log(L-1)


def test_rce_classifier_predictions_are_ordinary(digits, rce_trainer):
    # the raw network is a reverse classifier: its argmin is the label; the ART classifier's argmax is
    raw = rce_trainer.get_model().model
    with torch.no_grad():
        z = raw(torch.as_tensor(digits.x_test))
    art_pred = rce_trainer.get_classifier().predict(digits.x_test).argmax(1)
    np.testing.assert_array_equal(z.argmin(1).numpy(), art_pred)


def test_train_model_on_a_dataloader_is_seeded(digits):
    from torch.utils.data import DataLoader, TensorDataset

    def run():
        torch.manual_seed(1)
        net = ra.SmallCNN(1, 10)
        ds = TensorDataset(torch.as_tensor(digits.x_train[:256]), torch.as_tensor(digits.y_train[:256]))
        loader = DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
        hist = ra.train_model(net, loader, ra.losses.reverse_cross_entropy, epochs=2, seed=3, verbose=False)
        return hist.loss

    a, b = run(), run()
    assert a == b and len(a) == 2 and a[1] < a[0]


def test_trainer_on_plain_module_needs_clip_values_for_art(digits):
    net = ra.SmallCNN(1, 10)
    t = ra.CETrainer(net, epochs=1, verbose=False).fit(digits.x_train[:64], digits.y_train[:64])
    with pytest.raises(ValueError, match="clip_values"):
        t.get_classifier()
    t = ra.CETrainer(net, epochs=1, verbose=False, clip_values=digits.clip_values).fit(digits.x_train[:64], digits.y_train[:64])
    assert t.get_classifier().clip_values.tolist() == list(digits.clip_values)


def test_trainers_train_through_the_estimators_preprocessing(digits):
    # ART's predict (and every ART attack) feeds the network (x - mean) / std: the trainer must train on exactly
    # that, i.e. give the same network as training on data normalised by hand (rce-art 0.1 trained on raw x: 40%)
    mean, std = -0.3, 0.15
    x, y = digits.x_train[:600], digits.y_train[:600]

    def train(preprocessing, data):
        torch.manual_seed(0)
        net = ra.SmallCNN(1, 10)
        clip = (-0.5, 0.5) if preprocessing else ((-0.5 - mean) / std, (0.5 - mean) / std)
        clf = ra.make_art_classifier(net, digits.input_shape, 10, clip, **({"preprocessing": preprocessing}
                                                                            if preprocessing else {}))
        return ra.RCETrainer(clf, epochs=4, lr=0.1, batch_size=64, verbose=False).fit(data, y).classifier

    through_art = train((mean, std), x)
    by_hand = train(None, ((x - mean) / std).astype(np.float32))
    pred_art = through_art.predict(digits.x_test).argmax(1)
    pred_hand = by_hand.predict(((digits.x_test - mean) / std).astype(np.float32)).argmax(1)
    assert (pred_art == digits.y_test).mean() > 0.9
    assert (pred_art == pred_hand).mean() > 0.97


def test_trainer_classifier_property_gives_ordinary_predictions(digits, rce_trainer):
    # ART's Trainer.classifier and get_classifier() must agree and predict ordinary labels (not the reverse)
    assert rce_trainer.classifier is rce_trainer.get_classifier()
    acc = (rce_trainer.classifier.predict(digits.x_test).argmax(1) == digits.y_test).mean()
    assert acc > 0.95
    plain = ra.RCETrainer(ra.SmallCNN(1, 10), epochs=1, verbose=False)
    assert isinstance(plain.classifier, ra.ReverseLogits)  # before fit and without clip values: the torch model


def test_detector_rejects_a_raw_rce_network(digits, rce_trainer):
    raw = rce_trainer.get_model().model  # the network before ReverseLogits: a reverse classifier
    clf = ra.make_art_classifier(raw, digits.input_shape, 10, digits.clip_values)
    with pytest.raises(ValueError, match="ReverseLogits"):
        ra.KDensityDetector(clf, n_per_class=50).fit(digits.x_train, digits.y_train)
