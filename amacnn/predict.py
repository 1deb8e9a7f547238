"""Predictions and metrics of a network on decoded images: what training, evaluation, ensembles,
quantisation and comparisons all score by."""

from __future__ import annotations

import numpy as np
import torch

from fer_mine.amacnn.calibration import calibration_of
from fer_mine.amacnn.datasets import LoadedSplit
from fer_mine.amacnn.metrics import classification_metrics
from fer_mine.amacnn.model import AMACNN, class_probabilities
from fer_mine.transforms.preprocess import Preprocess


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)


@torch.no_grad()
def predict_proba(
    model: AMACNN,
    images: torch.Tensor,
    preprocess: Preprocess,
    tta: bool = False,
    batch_size: int = 512,
) -> torch.Tensor:
    """Softmax probabilities for uint8 (N, C, H, W) images already on the model's device."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = preprocess.normalize(images[start : start + batch_size])
        batch = batch.contiguous(memory_format=torch.channels_last)
        outputs.append(class_probabilities(model, batch, tta).float())
    return torch.cat(outputs) if outputs else torch.zeros(0, model.config.num_classes)


def evaluate_loaded(
    model: AMACNN,
    split: LoadedSplit,
    preprocess: Preprocess,
    labels: tuple[str, ...],
    tta: bool = False,
    temperature: float | None = None,
) -> dict:
    """Metrics for a decoded split, plus per-subset ones for FER-2013's Public/PrivateTest; with
    a `temperature`, how well calibrated the probabilities are before and after it too."""
    probabilities = split_probabilities(model, split, preprocess, tta)
    metrics = metrics_of(split, probabilities.argmax(axis=1), labels)
    if temperature is not None:
        metrics["calibration"] = calibration_of(probabilities, split.labels, temperature)
        for usage, mask in _subsets(split).items():
            metrics["subsets"][usage]["calibration"] = calibration_of(
                probabilities[mask], split.labels[mask], temperature
            )
    return metrics


def split_probabilities(
    model: AMACNN, split: LoadedSplit, preprocess: Preprocess, tta: bool = False
) -> np.ndarray:
    """Uncalibrated class probabilities (N, classes) of every image of a decoded split."""
    # a quantised model holds packed weights, not parameters: it runs on the CPU
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return predict_proba(model, to_device_images(split.images, device), preprocess, tta).cpu().numpy()


def predict_split(model: AMACNN, split: LoadedSplit, preprocess: Preprocess, tta: bool = False) -> np.ndarray:
    """The predicted label index of every image of a decoded split."""
    return split_probabilities(model, split, preprocess, tta).argmax(axis=1)


def _subsets(split: LoadedSplit) -> dict[str, np.ndarray]:
    """FER-2013's test subsets present in a split, as masks."""
    masks = {
        u: np.array([i.startswith(u) for i in split.ids], dtype=bool) for u in ("PrivateTest", "PublicTest")
    }
    return {u: m for u, m in masks.items() if m.any()}


def metrics_of(split: LoadedSplit, predictions: np.ndarray, labels: tuple[str, ...]) -> dict:
    """`classification_metrics` of a split's predictions, with FER-2013's test subsets apart."""
    result = classification_metrics(split.labels, predictions, labels)
    subsets = {
        u: classification_metrics(split.labels[m], predictions[m], labels) for u, m in _subsets(split).items()
    }
    if subsets:
        result["subsets"] = subsets
    return result


def summarize_metrics(metrics: dict) -> dict:
    """What a model card keeps of an evaluation: headline figures and per-class recall."""
    keep = ("images", "accuracy", "macro_precision", "macro_recall", "macro_f1")
    summary = {k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k] for k in keep}
    summary["recall"] = {k: round(v["recall"], 4) for k, v in metrics["per_class"].items()}
    for name, sub in metrics.get("subsets", {}).items():
        summary[name] = summarize_metrics(sub)
    return summary
