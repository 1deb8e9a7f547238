"""Training-only augmentation, on whole batches (CPU or GPU), built from kornia."""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def training_augmentation(strength: float = 1.0) -> nn.Module:
    """The paper's three families: geometric, photometric and simulated occlusion.

    Takes float batches in [0, 1], shape (N, C, H, W); `strength` scales the ranges.
    """
    s = strength
    return K.AugmentationSequential(
        # geometric: flip, small rotation, shift, scale
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(
            degrees=12 * s, translate=(0.1 * s, 0.1 * s), scale=(1 - 0.12 * s, 1 + 0.12 * s), p=0.8
        ),
        # photometric: brightness, contrast, gamma, blur or noise
        K.ColorJiggle(brightness=0.3 * s, contrast=0.3 * s, p=0.8),
        K.RandomGamma(gamma=(1 - 0.3 * s, 1 + 0.3 * s), p=0.3),
        K.RandomGaussianBlur(kernel_size=(3, 3), sigma=(0.1, 1.0), p=0.2),
        K.RandomGaussianNoise(std=0.03 * s, p=0.2),
        # simulated occlusion: erase one random patch
        K.RandomErasing(scale=(0.02, 0.15), ratio=(0.3, 3.3), p=0.5),
    )
