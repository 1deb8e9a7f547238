"""Choose between models the way one ships (README, ablation K): on their shared validation split,
each with and without flip TTA, beside what it costs per face, and tested against a baseline.

A candidate beats the baseline beyond chance when an exact McNemar test on the validation images
the two score differently gives p < 0.05. Cost is forward passes per face (networks x views): on
CPU the classifier's faces/s scale with its inverse (README, Benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_mine.amacnn.metrics import mcnemar_exact
from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble
from fer_mine.amacnn.train import PreparedData, metrics_of, predict_split
from fer_mine.amacnn.weights import ModelCard

SIGNIFICANCE = 0.05  # the p-value below which a candidate counts as better or worse than the baseline


@dataclass
class Scored:
    """One model with one TTA setting, scored on validation and compared with the baseline."""

    model: str
    tta: bool
    passes: int  # forward passes per face: networks x (2 with flip)
    val_accuracy: float
    only_baseline: int = 0  # validation images only the baseline gets right
    only_this: int = 0  # ... and only this one
    p_value: float = 1.0
    baseline: bool = False  # this row is the baseline itself
    tests: dict[str, float] = field(default_factory=dict)  # "<dataset>/<split>[ subset]" -> accuracy

    @property
    def verdict(self) -> str:
        if self.p_value >= SIGNIFICANCE:
            return "no difference shown"
        return "better" if self.only_this > self.only_baseline else "worse"


def compare(
    loaded: list[tuple[AMACNN | AMACNNEnsemble, ModelCard]],
    data: PreparedData,
    baseline_tta: bool,
    with_tests: bool = False,
) -> list[Scored]:
    """Every model without and with flip; the first model with `baseline_tta` is the baseline.
    Test splits are scored only when asked: they are for reporting a choice, never for making it."""
    rows: list[tuple[Scored, np.ndarray]] = []
    for model, card in loaded:
        name = f"{card.name} ({card.sha256[:8]})"
        for tta in (False, True):
            correct = predict_split(model, data.val, card.preprocess, tta) == data.val.labels
            row = Scored(name, tta, card.members * (2 if tta else 1), float(correct.mean()))
            if with_tests:
                row.tests = _test_accuracies(model, card, data, tta)
            rows.append((row, correct))
    rows[1 if baseline_tta else 0][0].baseline = True
    baseline = next(correct for row, correct in rows if row.baseline)
    for row, correct in rows:
        row.only_baseline, row.only_this, row.p_value = mcnemar_exact(baseline, correct)
    return [row for row, _ in rows]


def _test_accuracies(model: AMACNN, card: ModelCard, data: PreparedData, tta: bool) -> dict[str, float]:
    scores = {}
    for key, split in data.tests.items():
        metrics = metrics_of(split, predict_split(model, split, card.preprocess, tta), card.labels)
        scores[key] = metrics["accuracy"]
        for subset, sub in metrics.get("subsets", {}).items():
            scores[f"{key} [{subset}]"] = sub["accuracy"]
    return scores
