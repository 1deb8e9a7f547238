"""Calibrated confidence: temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
Networks"), its expected calibration error, and the threshold below which a face is uncertain.

A network trained with label smoothing and averaged into a soup is not calibrated: its top
probability says little about how often it is right. One scalar T per model, fitted on the
model's own validation split by negative log-likelihood, rescales every output: p ** (1 / T),
renormalised, which is softmax(logits / T) for one network and applies as well to probabilities
already averaged (flip TTA, ensembles). The argmax never changes, so accuracy does not either.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

ECE_BINS = 15  # the usual choice since Guo et al.; the reliability diagram uses the same bins
# What "uncertain" protects: the faces kept (not uncertain) are right this often on validation
UNCERTAIN_GOAL = 0.80
_TINY = 1e-12


def calibrate(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities (N, classes) rescaled by a temperature; 1.0 leaves them as they are."""
    if temperature == 1.0:
        return probabilities
    return (probabilities.clamp_min(_TINY).log() / temperature).softmax(dim=1)


def _scaled_nll(log_p: np.ndarray, labels: np.ndarray, beta: float) -> float:
    scaled = log_p * beta
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, _TINY, None))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the negative log-likelihood of `labels` under p ** (1/T). The NLL is
    convex in beta = 1/T, so a golden-section search over log(beta) finds its minimum."""
    if not len(labels):
        raise ValueError("no examples to fit a temperature on")
    log_p = np.log(np.clip(probabilities.astype(np.float64), _TINY, None))
    lo, hi = math.log(0.02), math.log(50.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = (_scaled_nll(log_p, labels, math.exp(x)) for x in (a, b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _scaled_nll(log_p, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _scaled_nll(log_p, labels, math.exp(b))
    return 1.0 / math.exp((lo + hi) / 2)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin (equal width over [0, 1]): faces, mean confidence, accuracy."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 joins the first bin
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for i in range(bins):
        mask = index == i
        n = int(mask.sum())
        rows.append({
            "low": float(edges[i]), "high": float(edges[i + 1]), "faces": n,
            "confidence": float(confidence[mask].mean()) if n else None,
            "accuracy": float(correct[mask].mean()) if n else None,
        })  # fmt: skip
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of (share of faces) x |accuracy - mean confidence|."""
    total = len(labels)
    return float(sum(
        r["faces"] / total * abs(r["accuracy"] - r["confidence"]) for r in reliability(probabilities, labels, bins)
        if r["faces"]
    ))  # fmt: skip


def uncertain_threshold(probabilities: np.ndarray, labels: np.ndarray, goal: float = UNCERTAIN_GOAL) -> float:
    """The lowest confidence cut-off at which the faces at or above it are right at least `goal`
    of the time: every face under it is `uncertain`. Kept faces are as many as the goal allows."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    # accuracy of the top-k most confident faces, for every k
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    meets = np.flatnonzero(running >= goal)
    if not len(meets):
        return 1.0  # nothing reaches the goal: every face is uncertain
    k = meets[-1]
    return float(confidence[order][k])


def calibration_of(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """How calibrated uncalibrated `probabilities` are before and after `temperature`: ECE and
    NLL both ways, and the reliability bins both ways (for the diagram)."""
    calibrated = calibrate(torch.from_numpy(probabilities), temperature).numpy()
    return {
        "temperature": temperature,
        "ece": expected_calibration_error(calibrated, labels),
        "ece_uncalibrated": expected_calibration_error(probabilities, labels),
        "nll": negative_log_likelihood(calibrated, labels),
        "nll_uncalibrated": negative_log_likelihood(probabilities, labels),
        "bins": reliability(calibrated, labels),
        "bins_uncalibrated": reliability(probabilities, labels),
    }


def summary(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """What a model card keeps for one TTA setting: the temperature, NLL and ECE before and
    after, and the uncertain cut-off with how many validation faces it keeps and how accurately."""
    calibrated = calibrate(torch.from_numpy(probabilities), temperature).numpy()
    cut = uncertain_threshold(calibrated, labels)
    kept = calibrated.max(axis=1) >= cut
    right = calibrated.argmax(axis=1) == labels
    return {
        "temperature": round(temperature, 4),
        "nll": [round(negative_log_likelihood(p, labels), 4) for p in (probabilities, calibrated)],
        "ece": [round(expected_calibration_error(p, labels), 4) for p in (probabilities, calibrated)],
        "uncertain_below": round(cut, 4),
        "kept_share": round(float(kept.mean()), 4),
        "kept_accuracy": round(float(right[kept].mean()), 4) if kept.any() else None,
    }


def plot_reliability(before: list[dict], after: list[dict], path: Path, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after calibration,
    with the faces per bin below (a bin of few faces says little)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 6.5), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    for rows, label, color in ((before, "uncalibrated", "#d62728"), (after, "calibrated", "#1f77b4")):
        used = [r for r in rows if r["faces"]]
        ax.plot(
            [r["confidence"] for r in used],
            [r["accuracy"] for r in used],
            marker="o",
            color=color,
            label=label,
        )
    width = 1.0 / len(after)
    centers = [(r["low"] + r["high"]) / 2 for r in after]
    counts.bar(centers, [r["faces"] for r in after], width=width * 0.9, color="#1f77b4")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    counts.set_xlabel("confidence (top probability)")
    counts.set_ylabel("faces (calibrated)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
