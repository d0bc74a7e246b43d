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
    return float((logits.argmax(1).numpy() == digits.y_test).mean()), float(ra.non_me(logits).mean())


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
        hist = ra.train_model(net, loader, ra.reverse_cross_entropy, epochs=2, seed=3, progress=False)
        return hist.loss

    a, b = run(), run()
    assert a == b and len(a) == 2 and a[1] < a[0]


def test_trainer_on_plain_module_needs_clip_values_for_art(digits):
    net = ra.SmallCNN(1, 10)
    t = ra.CETrainer(net, epochs=1, progress=False).fit(digits.x_train[:64], digits.y_train[:64])
    with pytest.raises(ValueError, match="clip_values"):
        t.get_classifier()
    t = ra.CETrainer(net, epochs=1, progress=False, clip_values=digits.clip_values).fit(digits.x_train[:64], digits.y_train[:64])
    assert t.get_classifier().clip_values.tolist() == list(digits.clip_values)
