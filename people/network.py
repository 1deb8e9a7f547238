"""dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1, public domain) in PyTorch.

The network of dlib's `dnn_face_recognition_ex.cpp`: a 7x7 convolution, max pooling, then 14
residual blocks (32, 64, 128, 256 and 256 channels, each level but the first starting with a
block of stride 2), global average pooling and a 128-d linear layer without bias. Batch norm is
folded into per-channel affine layers, as dlib saves it. Two dlib quirks are kept, so that the
embeddings are dlib's own: a stride-2 convolution has no padding, and a residual sum of tensors
of different shapes is taken over the larger shape with the missing values as 0.

The weights were read once out of dlib's file by `tools/convert_dlib_face_recognition.py` and
ship as float16 safetensors (`people/weights/dlib-resnet/`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHIP = 150  # dlib's input: a 150x150 RGB face chip
# dlib's input_rgb_image_sized: (pixel - mean) / 256, per channel in R, G, B order
MEAN_RGB = (122.782, 117.001, 104.298)
# The residual blocks, input to output: (channels, stride of the block's first convolution)
BLOCKS = (
    [(32, 1)] * 3
    + [(64, 2)] + [(64, 1)] * 3
    + [(128, 2)] + [(128, 1)] * 2
    + [(256, 2)] + [(256, 1)] * 2
    + [(256, 2)]
)  # fmt: skip
EMBEDDING = 128


class Affine(nn.Module):
    """A folded batch norm: y = gamma * x + beta, per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def padding(stride: int, kernel: int) -> int:
    """dlib's default: 'same' padding for stride 1, none otherwise."""
    return kernel // 2 if stride == 1 else 0


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, missing values taken as 0."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = (s - n for s, n in zip(shape, t.shape[1:], strict=True))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t

    return grow(a) + grow(b)


class Block(nn.Module):
    def __init__(self, inputs: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, channels, 3, stride, padding(stride, 3))
        self.bn1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.bn2 = Affine(channels)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_padded(out, skip))


class FaceEmbedder(nn.Module):
    """150x150 RGB chips (uint8, N x 3 x H x W, R first) to 128-d embeddings (Euclidean)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, padding(2, 7))
        self.bn = Affine(32)
        blocks, inputs = [], 32
        for channels, stride in BLOCKS:
            blocks.append(Block(inputs, channels, stride))
            inputs = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(inputs, EMBEDDING, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips.float() - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 3, 2)
        x = self.blocks(x).mean(dim=(2, 3))
        return self.fc(x)
