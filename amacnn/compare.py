"""Choose between models the way one ships (docs/ablations.md, ablation K): on their shared validation split,
each with and without flip TTA, beside what it costs per face, and tested against a baseline.

A candidate beats the baseline beyond chance when an exact McNemar test on the validation images
the two score differently gives p < 0.05. Cost is forward passes per face (networks x views): on
CPU the classifier's faces/s scale with its inverse (docs/benchmarks.md).

With another label set of the same pictures (FER+'s votes for FER-2013's images), each row is also
scored against those labels on the validation images that set holds. FER-2013's labels are noisy:
a gain on them that is a loss on FER+'s cleaner ones fits their noise (docs/ablations.md, ablation O).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_mine.amacnn.data import PreparedData, nearest_pictures
from fer_mine.amacnn.datasets import LoadedSplit, load_split, resolve_one
from fer_mine.amacnn.ensemble import validation_split_of
from fer_mine.amacnn.metrics import mcnemar_exact
from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble
from fer_mine.amacnn.predict import metrics_of, predict_split
from fer_mine.amacnn.weights import ModelCard
from fer_mine.errors import FerMineError

SIGNIFICANCE = 0.05  # the p-value below which a candidate counts as better or worse than the baseline
# mean absolute grey-level difference under which two pictures are one: FER+'s PNGs and the Kaggle
# JPEGs of the same FER-2013 pictures differ by 1.3 on average, 1.6 at most (data SOURCE.md)
SAME_PICTURE = 4.0


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
    # against the other label set: images, accuracy, only_baseline, only_this, p_value
    other_labels: dict[str, float] = field(default_factory=dict)

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
    other: LoadedSplit | None = None,
) -> list[Scored]:
    """Every model without and with flip; the first model with `baseline_tta` is the baseline.
    Test splits are scored only when asked: they are for reporting a choice, never for making it.
    `other`: another label set's split holding the validation pictures (`relabel`)."""
    held, other_labels = relabel(data.val, other) if other is not None else (None, None)
    if held is not None and not held.any():
        raise FerMineError("none of the validation pictures is among the other label set's pictures")
    rows: list[tuple[Scored, np.ndarray, np.ndarray | None]] = []
    for model, card in loaded:
        name = f"{card.name} ({card.sha256[:8]})"
        for tta in (False, True):
            predicted = predict_split(model, data.val, card.preprocess, tta)
            correct = predicted == data.val.labels
            row = Scored(name, tta, card.members * (2 if tta else 1), float(correct.mean()))
            if with_tests:
                row.tests = _test_accuracies(model, card, data, tta)
            rows.append((row, correct, None if held is None else (predicted == other_labels)[held]))
    rows[1 if baseline_tta else 0][0].baseline = True
    baseline, other_baseline = next((c, o) for row, c, o in rows if row.baseline)
    for row, correct, other_correct in rows:
        row.only_baseline, row.only_this, row.p_value = mcnemar_exact(baseline, correct)
        if other_correct is not None:
            only_baseline, only_this, p_value = mcnemar_exact(other_baseline, other_correct)
            row.other_labels = {
                "images": len(other_correct),
                "accuracy": float(other_correct.mean()),
                "only_baseline": only_baseline,
                "only_this": only_this,
                "p_value": p_value,
            }
    return [row for row, _, _ in rows]


def relabel(val: LoadedSplit, other: LoadedSplit) -> tuple[np.ndarray, np.ndarray]:
    """Which validation pictures `other` holds too (`nearest_pictures`, within SAME_PICTURE) and
    their labels there: a mask over `val`, and labels for every validation picture (0 where none)."""
    copy = nearest_pictures(val.images, other.images, SAME_PICTURE)
    found = copy >= 0
    labels = np.zeros(len(copy), np.int64)
    labels[found] = other.labels[copy[found]]
    return found, labels


def other_label_split(card: ModelCard, data_root: Path, name: str) -> LoadedSplit:
    """Dataset `name`'s training split, decoded for `card`: where the pictures of a validation
    split carved from another dataset's training pictures are found under `name`'s labels."""
    split = validation_split_of(card)
    dataset = resolve_one(data_root, name, "--other-labels", split["split_seed"], split["keep_contempt"])
    return load_split(dataset.splits["train"], card.preprocess, card.labels)


def _test_accuracies(model: AMACNN, card: ModelCard, data: PreparedData, tta: bool) -> dict[str, float]:
    scores = {}
    for key, split in data.tests.items():
        metrics = metrics_of(split, predict_split(model, split, card.preprocess, tta), card.labels)
        scores[key] = metrics["accuracy"]
        for subset, sub in metrics.get("subsets", {}).items():
            scores[f"{key} [{subset}]"] = sub["accuracy"]
    return scores
