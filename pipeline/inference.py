"""AMACNN and the face embedder behind Beam's RunInference, over the run's Units
(pipeline/steps.py): each model is loaded once per worker by Beam.

An element is one image with its faces. BatchElements weighs each by its face count, so a
batch is a few images with up to --batch-size faces in all, whether photos hold one face or
forty; an image with more faces than that is a batch of its own, classified in slices. Units
with nothing for the model (no faces, a file's end, an error) pass through with no inference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from fer_mine.amacnn.model import class_probabilities, pick_device
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import DEFAULT_BATCH_SIZE, DEFAULT_TTA
from fer_mine.people.embed import embed, load_embedder
from fer_mine.pipeline.steps import Unit


def faces_of(unit: Unit) -> int:
    """A unit's weight in a classification batch (at least 1, so that batches stay bounded)."""
    return max(1, len(unit.faces))


def chips_of(unit: Unit) -> int:
    return max(1, len(unit.chips))


def _split(units: Sequence[Unit], counts: list[int], outputs: np.ndarray) -> list[PredictionResult]:
    """One result per unit: its rows of `outputs` (None for a unit that had none)."""
    results, start = [], 0
    for unit, count in zip(units, counts, strict=True):
        results.append(PredictionResult(unit, outputs[start : start + count] if count else None))
        start += count
    return results


class AMACNNModelHandler(ModelHandler[Unit, PredictionResult, torch.nn.Module]):
    """Calibrated class probabilities for every face of a batch of images; `tta` averages in the
    mirrored face (chosen on FER-2013 validation data: +0.4 to +0.9 points accuracy, twice the
    model cost), `temperature` is the model card's for that setting. Weights are loaded through
    fer-mine's checked loader (sha256 + safetensors), never torch.load."""

    def __init__(
        self,
        model_path: str | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | None = None,
        tta: bool = DEFAULT_TTA,
        threads: int | None = None,
        precision: str = "float32",
    ) -> None:
        super().__init__()
        self._model_path, self._batch_size, self._tta, self._threads = model_path, batch_size, tta, threads
        self._precision = precision  # resolved by the run's plan: the tables record it
        # int8 kernels are CPU ones: the plan chose int8 for the CPU, so it stays there
        self._device = device or ("cpu" if precision == "int8" else str(pick_device()))
        self._temperature = read_card(model_path)[0].temperature(tta)

    def load_model(self) -> torch.nn.Module:
        if self._threads:  # Beam calls this in each worker process: set its share of the cores
            torch.set_num_threads(self._threads)
        return load_model(self._model_path, device=self._device, precision=self._precision)[0]

    def run_inference(
        self, batch: Sequence[Unit], model: torch.nn.Module, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        counts = [len(u.faces) for u in batch]
        crops = [u.crops for u in batch if u.crops is not None]
        if not crops:
            return _split(batch, counts, np.empty((0, 0), np.float32))
        images = torch.cat(crops)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), self._batch_size):
                part = images[start : start + self._batch_size].to(self._device)
                part = part.contiguous(memory_format=torch.channels_last)
                outputs.append(class_probabilities(model, part, self._tta, self._temperature).float().cpu())
        return _split(batch, counts, torch.cat(outputs).numpy())

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size, "max_batch_weight": self._batch_size,
                "element_size_fn": faces_of}  # fmt: skip


class EmbedderModelHandler(ModelHandler[Unit, PredictionResult, torch.nn.Module]):
    """dlib's face-recognition network (people/) behind RunInference: each unit's 150x150 RGB
    chips in, 128-d embeddings out; loaded once per worker, batched, on CUDA where present."""

    def __init__(
        self, batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        self._batch_size, self._device, self._threads = batch_size, device, threads

    def load_model(self) -> torch.nn.Module:
        if self._threads:
            torch.set_num_threads(self._threads)
        return load_embedder(None, str(pick_device(self._device)))

    def run_inference(
        self, batch: Sequence[Unit], model: torch.nn.Module, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        counts = [len(u.chips) for u in batch]
        chips = [chip for u in batch for _, chip in u.chips]
        vectors = embed(np.stack(chips), model, self._batch_size) if chips else np.empty((0, 0), np.float32)
        return _split(batch, counts, vectors)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size, "max_batch_weight": self._batch_size,
                "element_size_fn": chips_of}  # fmt: skip
