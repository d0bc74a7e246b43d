"""The binarized system of the binarization test: the detector's classifier read out by one linear 2-class readout
per tested input, with the detector's score unchanged (negated with its threshold for the inverted test)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rce_art._tensors import eval_mode
from rce_art._validation import to_numpy
from rce_art.detectors.base import ScoreDetector
from rce_art.models.estimator import TorchView
from rce_art.models.features import logits_and_features

__all__ = ["BinarizedSystem", "Readouts"]


class Readouts(nn.Module):
    """The network's final features read out by one linear 2-class readout per tested input, each row by the readout
    of the (preprocessed) input it is closest to."""

    anchors: Tensor
    weight: Tensor
    bias: Tensor

    def __init__(self, network: nn.Module, anchors: Tensor, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("anchors", anchors.flatten(1))
        self.register_buffer("weight", weight)  # (n, D)
        self.register_buffer("bias", bias)  # (n,)

    def rows(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cdist(x.detach().flatten(1).float(), self.anchors).argmin(1)

    def readout(self, x: Tensor, features: Tensor) -> Tensor:
        j = self.rows(x)
        z = (features * self.weight[j]).sum(1) + self.bias[j]
        return torch.stack([-z / 2, z / 2], 1)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = logits_and_features(self.network, x)[1]
        return self.readout(x, feats), feats

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_features(x)[0]


class BinarizedSystem(ScoreDetector):
    """A fitted detector's classifier with its last layer replaced by per-input binary readouts; the detector's score
    unchanged (negated, with its threshold, for the inverted test). An rce-art detector, so every attack runs on it.

    Built by [`binarization_test`][rce_art.evaluation.binarization_test]; not saved (``save`` raises).
    """

    format_tag = "rce_art.BinarizedSystem/1"
    report_key = "score"

    def __init__(self, detector: Any, readouts: Any, threshold: float, inverted: bool = False) -> None:
        super().__init__(detector.classifier, fpr=float(detector.fpr), batch_size=int(detector.batch_size))
        self.detector, self.readouts, self.inverted, self.threshold = detector, readouts, inverted, float(threshold)
        self._view = TorchView(readouts, detector.view.device, detector.view.clip_values, detector.view.input_shape,
                               detector.view.estimator)
        self._model = readouts
        sign = -1.0 if inverted else 1.0
        self.threshold_ = sign * float(threshold)
        self.calibration_scores_ = (sign * detector.calibration_scores_.double()).sort().values
        self.nb_classes_ = 2
        self._sign = sign

    def _bind(self) -> None:  # the view is set in __init__
        pass

    def eot_draw(self, draw: int) -> Any:
        return self.detector.eot_draw(draw)

    def logits_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xp = self._view.preprocess(x.to(self._view.device))
        _, score = self.detector.logits_and_score(x)
        feats = logits_and_features(self.detector.model, xp)[1]
        return self.readouts.readout(xp, feats), self._sign * score

    def _scores_and_predictions(self, x: Any, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
        xt = torch.as_tensor(np.asarray(x, np.float32))
        bs = int(batch_size or self.batch_size)
        parts = []
        with eval_mode(self.readouts), torch.no_grad():
            for i in range(0, len(xt), bs):
                logits, score = self.logits_and_score(xt[i : i + bs])
                parts.append((score.double(), logits.argmax(1)))
        return to_numpy(torch.cat([p[0] for p in parts])), to_numpy(torch.cat([p[1] for p in parts]))

    def save(self, path: Any) -> None:
        raise ValueError("a BinarizedSystem is built per test; it is not saved")
