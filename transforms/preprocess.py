"""The one preprocessing definition: training, evaluation and the pipeline all use it,
and it is stored in every model card so the weights carry what they expect."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Preprocess:
    size: int = 48
    channels: int = 1  # 1 = gray, 3 = RGB
    mean: float = 0.5  # applied after scaling pixels to [0, 1]
    std: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        return cls(**data)

    def to_pixels(self, image: np.ndarray) -> np.ndarray:
        """Any gray/BGR/BGRA uint8 image -> uint8 (size, size, channels), RGB order for color."""
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if self.channels == 1:
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if image.shape[0] != self.size or image.shape[1] != self.size:
            shrinking = image.shape[0] > self.size
            interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            image = cv2.resize(image, (self.size, self.size), interpolation=interp)
        return image.reshape(self.size, self.size, self.channels)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) or float in [0, 1] -> the normalized float tensor the model takes."""
        if batch.dtype == torch.uint8:
            batch = batch.float().div_(255.0)
        return (batch - self.mean) / self.std

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) from `to_pixels` -> normalized float (N, C, H, W), channels_last."""
        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        return self.normalize(batch).contiguous(memory_format=torch.channels_last)
