"""CE and RCE trainers in ART's ``Trainer`` form, on the shared torch loop."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from art.defences.trainer import Trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader

from rce_art._tensors import eval_mode, predicted_labels
from rce_art._validation import check_inputs, check_labels, deprecated_progress
from rce_art.data.augment import AUGMENTATIONS, random_crop_flip
from rce_art.losses.rce import reverse_cross_entropy
from rce_art.models.estimator import Preprocessed, make_art_classifier, resolve_model, with_model
from rce_art.models.reverse import ReverseLogits
from rce_art.settings import SGD
from rce_art.training.loop import SCHEDULES, TrainHistory, train_model

__all__ = ["CETrainer", "RCETrainer", "TorchTrainer"]


class TorchTrainer(Trainer):
    """Shared trainer: SGD with momentum, weight decay and a piecewise schedule (Appendix B.1).

    The network is trained through the ART estimator's preprocessing (``preprocessing=(mean, std)``,
    preprocessing defences): every batch goes through exactly the transformation ART's ``predict``
    and ART's attacks apply, so the network is served the input scale it was trained on.

    Args:
        classifier: ART ``PyTorchClassifier`` around the network to train, or the ``nn.Module``
            itself (then pass ``clip_values`` so that `get_classifier` can build one).
            The classifier's own loss and optimizer are not used.
        epochs: Passes over the training data.
        batch_size: Mini-batch size (paper: 128).
        lr: Base learning rate (paper: 0.1).
        momentum: SGD momentum.
        weight_decay: L2 weight decay (paper: 2e-4).
        milestones: Fractions of training where the learning rate drops by ``gamma``
            (paper's MNIST shape: 0.5, 0.75).
        gamma: Decay factor (paper: 0.1).
        seed: Seed of shuffling and model randomness.
        verbose: Show a progress bar (``progress``: its deprecated 0.3 name).
        clip_values: Pixel range, needed only when ``classifier`` is a plain module.
        schedule: ``"piecewise"`` (default, Pang et al.) or ``"cosine"`` annealing (Lemesle & Vernade).
        augment: ``None`` (default), ``"crop"``, ``"flip"`` or ``"crop-flip"``: random crops after padding
            by ``crop_padding`` pixels of the lowest pixel value and/or random horizontal flips, on every
            batch (CIFAR-10 standard; `rce_art.data.augment.random_crop_flip`).
        crop_padding: Padding of the random crop (4 for CIFAR-10).
        optimizer: ``None`` (SGD with ``lr``, ``momentum``, ``weight_decay``: the paper's), a factory called with the
            network's parameters (e.g. ``functools.partial(torch.optim.Adam, lr=1e-3)``), or ``"classifier"``: the
            ART classifier's own optimizer. The schedule multiplies its learning rate.
        validation: Held-out ``(x, y)`` whose accuracy (ordinary predictions) is recorded after every epoch in
            ``history_.val_accuracy``.

    Defaults are the paper's (``rce_art.settings.SGD``); ``rce_art.settings.LEMESLE_SGD`` holds the
    report's (weight decay 5e-4, cosine schedule, crop + flip).

    Attributes:
        history_ (TrainHistory): Per-epoch loss, learning rate and validation accuracy, after ``fit``.
    """

    def __init__(
        self,
        classifier: Any,
        *,
        epochs: int = 10,
        batch_size: int = SGD["batch_size"],
        lr: float = SGD["lr"],
        momentum: float = SGD["momentum"],
        weight_decay: float = SGD["weight_decay"],
        milestones: Sequence[float] = SGD["milestones"],
        gamma: float = SGD["gamma"],
        seed: int = 0,
        verbose: bool = True,
        clip_values: tuple[float, float] | None = None,
        schedule: str = "piecewise",
        augment: str | None = None,
        crop_padding: int = 4,
        optimizer: Any = None,
        validation: tuple[Any, Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if augment is not None and augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be None or one of {AUGMENTATIONS}, got {augment!r}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self._view = resolve_model(classifier)
        super().__init__(classifier)
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.momentum, self.weight_decay = momentum, weight_decay
        self.milestones, self.gamma, self.seed = tuple(milestones), gamma, seed
        self.verbose = deprecated_progress(progress, verbose)
        self.clip_values = clip_values if clip_values is not None else self._view.clip_values
        self.schedule, self.augment, self.crop_padding = schedule, augment, int(crop_padding)
        if isinstance(optimizer, str) and optimizer != "classifier":
            raise ValueError(f"optimizer must be None, 'classifier', a torch optimizer factory or optimizer, got "
                             f"{optimizer!r}")
        if optimizer == "classifier" and getattr(self._view.estimator, "optimizer", None) is None:
            raise ValueError("optimizer='classifier' needs an ART classifier built with an optimizer")
        self.optimizer, self.validation = optimizer, validation
        self._input_shape: tuple[int, ...] | None = self._view.input_shape
        self._nb_classes: int | None = getattr(self._view.estimator, "nb_classes", None)
        self._art: Any = None

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Training objective on the raw logits of the network."""
        raise NotImplementedError

    def training_module(self) -> nn.Module:
        """The module trained: the estimator's preprocessing followed by the network (raw logits)."""
        return Preprocessed(self._view) if self._view.has_preprocessing else self._view.model

    def _loop_module(self) -> nn.Module:
        """The module the loop runs (and wraps in DistributedDataParallel): its output feeds ``_batch_loss``."""
        return self.training_module()

    def _train(self, data: Any) -> TrainHistory:
        self.history_ = train_model(
            self._loop_module(),
            data,
            self.loss,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            milestones=self.milestones,
            gamma=self.gamma,
            seed=self.seed,
            device=self._view.device,
            verbose=self.verbose,
            batch_loss=self._batch_loss(data),
            schedule=self.schedule,
            augment=self._augmentation(),
            post_step=self._post_step(),
            optimizer=self._view.estimator.optimizer if self.optimizer == "classifier" else self.optimizer,
            epoch_end=self._validation_recorder(),
        )
        return self.history_

    def _validation_recorder(self) -> Any:
        """``None``, or the per-epoch callback appending the accuracy of the network's ordinary predictions on
        ``validation`` (inputs and labels checked once, here) to the history."""
        if self.validation is None:
            return None
        x, y = self.validation
        check_inputs(x, name="validation inputs", input_shape=self._input_shape, clip_values=self.clip_values)
        assert self._nb_classes is not None  # set by fit / fit_loader before training
        labels = check_labels(y, len(x), self._nb_classes, name="validation labels")
        xt = torch.as_tensor(x, dtype=torch.float32).to(self._view.device)

        def record(history: TrainHistory) -> None:
            model = self.get_model()
            module = Preprocessed(self._view, model) if self._view.has_preprocessing else model
            history.val_accuracy.append(float((predicted_labels(module, xt).cpu().numpy() == labels).mean()))

        return record

    def _augmentation(self) -> Any:
        if self.augment is None:
            return None
        fill = float(self.clip_values[0]) if self.clip_values is not None else 0.0
        crop, flip, pad = "crop" in self.augment, "flip" in self.augment, self.crop_padding

        def augment(x: Tensor, generator: torch.Generator) -> Tensor:
            return random_crop_flip(x, padding=pad, flip=flip, crop=crop, fill=fill, generator=generator)

        return augment

    def _batch_loss(self, data: Any) -> Any:
        """Per-batch objective for the loop; ``None`` uses ``self.loss(model(x), y)``."""
        return None

    def _post_step(self) -> Any:
        """Called by the loop after every optimiser step; ``None``: nothing."""
        return None

    def fit(self, x: Any, y: Any, **kwargs: Any) -> TorchTrainer:
        """Train on arrays or tensors.

        Args:
            x: Inputs ``(N, C, H, W)``, floating, finite, within the classifier's clip values.
            y: Labels ``(N,)`` integers or ``(N, L)`` one-hot.
            **kwargs: Not used (ART signature).

        Returns:
            ``self``.
        """
        check_inputs(x, name="x", input_shape=self._input_shape, clip_values=self.clip_values)
        module = self.training_module()
        with torch.no_grad(), eval_mode(module):
            nb_classes = module(torch.as_tensor(x[:1], dtype=torch.float32, device=self._view.device)).shape[1]
        y_int = check_labels(y, x.shape[0], nb_classes)
        self._input_shape = tuple(x.shape[1:])
        self._nb_classes = nb_classes
        self._train((x, y_int))
        return self

    def fit_loader(self, loader: DataLoader) -> TorchTrainer:
        """Train on a ``DataLoader`` yielding ``(x, y)`` batches with integer labels (raw inputs).

        The input shape and the number of classes (for `get_classifier`) are read off the first batch. Every
        batch is checked as ``fit`` checks arrays (floating, finite, within ``clip_values``): a loader that
        already normalises its images, under a classifier whose ART preprocessing normalises them again, would
        otherwise train on doubly normalised inputs without a word.

        Raises:
            TypeError: If ``loader`` is not a ``DataLoader`` (e.g. a ``Dataset``: wrap it), or yields dict batches.
            ValueError: On a batch outside ``clip_values``, with NaN / inf, or of a non-floating dtype.
        """
        if not isinstance(loader, DataLoader):
            raise TypeError(f"fit_loader takes a torch DataLoader yielding (x, y) batches, got "
                            f"{type(loader).__name__}; wrap a Dataset: DataLoader(dataset, batch_size=64, shuffle=True)")
        batches = _CheckedBatches(loader, self.clip_values)
        xb, _ = next(iter(batches))
        module = self.training_module()
        with torch.no_grad(), eval_mode(module):
            self._nb_classes = int(module(torch.as_tensor(xb[:1], dtype=torch.float32, device=self._view.device)).shape[1])
        self._input_shape = tuple(xb.shape[1:])
        self._train(batches)
        return self

    def get_network(self) -> nn.Module:
        """Your own module, as trained: its ``state_dict()`` loads into a fresh instance of your class.

        For CE this is [`get_model`][rce_art.training.TorchTrainer.get_model]; for RCE, PDM and reverse objectives
        it is the network *inside* [`ReverseLogits`][rce_art.models.ReverseLogits] (its raw logits are reversed:
        wrap it in ``ReverseLogits`` again after loading to get ordinary predictions).
        """
        return self._view.model

    def get_model(self) -> nn.Module:
        """The trained torch module, giving ordinary logits (on preprocessed inputs, as the estimator's model)."""
        return self._view.model

    def _reversed_model(self) -> nn.Module:
        """The network wrapped in [`ReverseLogits`][rce_art.models.ReverseLogits] (one wrapper, made once): the model of
        trainers whose objective makes a reverse classifier (RCE and the like)."""
        if not hasattr(self, "_reversed"):
            self._reversed = ReverseLogits(self._view.model)
        return self._reversed

    def get_classifier(self) -> Any:
        """The trained network as an ART ``PyTorchClassifier`` whose predictions are ordinary.

        For an ART input, the same estimator (CE) or one like it around `get_model` (RCE, PDM):
        shape, classes, clip values, preprocessing and defences carried over. The same object is
        returned on every call.

        Raises:
            ValueError: If a plain module was given without ``clip_values`` or before ``fit``.
        """
        if self._art is not None:
            return self._art
        model = self.get_model()
        if self._view.estimator is not None:
            self._art = self._view.estimator if model is self._view.model else with_model(self._view.estimator, model)
        elif self.clip_values is None or self._input_shape is None or self._nb_classes is None:
            raise ValueError("get_classifier needs clip_values (constructor) and an input shape (call fit first)")
        else:
            self._art = make_art_classifier(model, self._input_shape, self._nb_classes, self.clip_values,
                                            device_type="gpu" if self._view.device.type == "cuda" else "cpu")
        return self._art

    @property
    def classifier(self) -> Any:
        """The classifier with ordinary predictions: `get_classifier` where it can be built, else
        `get_model` (ART's ``Trainer.classifier``, which rce-art 0.1 left as the raw network)."""
        try:
            return self.get_classifier()
        except ValueError:
            return self.get_model()


class CETrainer(TorchTrainer):
    """Standard cross-entropy training (the paper's baseline). Arguments as in [`TorchTrainer`][]."""

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y)


class RCETrainer(TorchTrainer):
    """Reverse cross-entropy training with reverse logits (Pang et al. 2018, Section 3.2).

    Trains the network on [`reverse_cross_entropy`][rce_art.losses.reverse_cross_entropy] of its raw logits
    ``Z``; `get_model`, `get_classifier` and `classifier` give it wrapped in
    [`ReverseLogits`][rce_art.models.ReverseLogits], so predictions are ordinary. Arguments as in
    [`TorchTrainer`][]. A network without BatchNorm gets a warning at construction: RCE's gradients are
    small and its training stalls there (measured on a user's CNN without BatchNorm: loss 2.297 -> 2.254 in
    8 epochs, accuracy 0.76 vs 0.86 with CE).
    """

    def __init__(self, classifier: Any, **kwargs: Any) -> None:
        super().__init__(classifier, **kwargs)
        norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)
        if not any(isinstance(m, norms) for m in self._view.model.modules()):
            warnings.warn(f"RCETrainer: {type(self._view.model).__name__} has no BatchNorm (or other normalisation) "
                          "layer; RCE training is known to stall on such networks (loss barely below log(L), accuracy "
                          "well under CE's). Add BatchNorm, raise the learning rate or train longer, and compare with "
                          "CETrainer", UserWarning, stacklevel=2)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return reverse_cross_entropy(logits, y)

    def get_model(self) -> nn.Module:
        return self._reversed_model()


class PreprocessedFeatures(nn.Module):
    """``x -> (logits, final hidden features)`` of the preprocessed input: the loop module of trainers whose
    objective needs the features (PDM's embeddings, ER-Classifier's codes), wrapped in DDP under torchrun."""

    def __init__(self, features: nn.Module, preprocess: Any) -> None:
        super().__init__()
        self.features = features
        self._preprocess = preprocess

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.features.logits_and_features(self._preprocess(x))


class _CheckedBatches:
    """A DataLoader whose ``(x, y)`` batches are checked as ``fit`` checks arrays (range, dtype, finiteness)."""

    def __init__(self, loader: DataLoader, clip_values: tuple[float, float] | None) -> None:
        self.loader, self.clip_values = loader, clip_values
        self.sampler = loader.sampler  # the training loop calls its set_epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for batch in self.loader:
            if isinstance(batch, dict):
                raise TypeError(f"the DataLoader yields dict batches (keys {sorted(batch)}); make it yield (x, y) "
                                "tuples, e.g. with a collate_fn returning (batch['image'], batch['label'])")
            xb, yb = batch[0], batch[1]
            try:
                check_inputs(xb, name="a DataLoader batch", clip_values=self.clip_values)
            except ValueError as e:
                raise ValueError(f"{e}. A loader that already normalises (transforms.Normalize) under a classifier "
                                 "whose ART preprocessing normalises too trains on doubly normalised inputs: yield "
                                 "raw pixels in clip_values and let the classifier's preprocessing normalise") from None
            yield xb, yb

