"""Image preprocessing (shared by training, evaluation, pipeline) and training augmentation."""

from fer_mine.transforms.preprocess import Preprocess

__all__ = ["Preprocess"]
