"""AMACNN and the face embedder behind Beam's RunInference: each model is loaded once per worker by Beam."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerTensor

from fer_mine.amacnn.model import AMACNN, class_probabilities, pick_device
from fer_mine.amacnn.weights import load_model, read_card
from fer_mine.defaults import DEFAULT_TTA
from fer_mine.people.embed import embed, load_embedder


def softmax_inference_fn(
    batch: Sequence[torch.Tensor],
    model: torch.nn.Module,
    device: Any,
    inference_args: dict[str, Any] | None = None,
    model_id: str | None = None,
    tta: bool = False,
    temperature: float = 1.0,
) -> Iterable[PredictionResult]:
    """Calibrated class probabilities for a batch of preprocessed crops (C, H, W); `tta` averages
    in the mirrored face (chosen on FER-2013 validation data: +0.4 to +0.9 points accuracy, twice
    the model cost); `temperature` is the model card's for that TTA setting."""
    with torch.inference_mode():
        images = torch.stack(list(batch)).to(device).contiguous(memory_format=torch.channels_last)
        probabilities = class_probabilities(model, images, tta, temperature).float().cpu().numpy()
    # the crop itself is not carried on: only its probabilities are needed downstream
    return [PredictionResult(None, p, model_id) for p in probabilities]


class AMACNNModelHandler(PytorchModelHandlerTensor):
    """Loads weights through fer-mine's checked loader (sha256 + safetensors), not torch.load."""

    def __init__(
        self,
        model_path: str | None,
        batch_size: int = 64,
        device: str | None = None,
        tta: bool = DEFAULT_TTA,
        threads: int | None = None,
        precision: str = "float32",
    ) -> None:
        self._fer_model_path = model_path
        self._fer_threads = threads
        self._fer_precision = precision  # resolved by the run's plan: the tables record it
        # int8 kernels are CPU ones: the plan chose int8 for the CPU, so it stays there
        self._fer_device = device or ("cpu" if precision == "int8" else str(pick_device()))
        card, weights_path = read_card(model_path)
        super().__init__(
            state_dict_path=str(weights_path),  # Beam wants it; load_model below reads it checked
            model_class=AMACNN,
            model_params={},
            device="GPU" if self._fer_device.startswith("cuda") else "CPU",
            inference_fn=functools.partial(softmax_inference_fn, tta=tta, temperature=card.temperature(tta)),
            min_batch_size=1,
            max_batch_size=batch_size,
        )

    def load_model(self) -> torch.nn.Module:
        if self._fer_threads:  # Beam calls this in each worker process: set its share of the cores
            torch.set_num_threads(self._fer_threads)
        model, _ = load_model(self._fer_model_path, device=self._fer_device, precision=self._fer_precision)
        self._device = torch.device(self._fer_device)
        return model


class EmbedderModelHandler(ModelHandler[np.ndarray, PredictionResult, torch.nn.Module]):
    """dlib's face-recognition network (people/) behind RunInference: 150x150 RGB chips in,
    128-d embeddings out; loaded once per worker, batched, on CUDA where present."""

    def __init__(self, batch_size: int = 64, device: str | None = None, threads: int | None = None) -> None:
        super().__init__()
        self._batch_size, self._device, self._threads = batch_size, device, threads

    def load_model(self) -> torch.nn.Module:
        if self._threads:
            torch.set_num_threads(self._threads)
        return load_embedder(None, str(pick_device(self._device)))

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: torch.nn.Module,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        vectors = embed(np.stack(batch), model, self._batch_size)
        return [PredictionResult(None, v) for v in vectors]

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}
