"""AMACNN: multi-scale stem, residual refinement, spatial attention, FC head (the source paper's
network; where it leaves the resolution schedule open, the presets in amacnn/presets.py choose).

Where resolution is reduced is not in the paper; each preset states it
(`stem_pool` after the stem and a stride per residual block) so it can be changed.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from fer_mine.amacnn.calibration import calibrate
from fer_mine.amacnn.presets import PRESETS, AMACNNConfig


class MultiScaleStem(nn.Module):
    """Parallel conv streams (3x3, 5x5, 7x7 by default), each conv-BN-ReLU, concatenated."""

    def __init__(self, in_channels: int, filters: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, filters, k, padding=k // 2, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            )
            for k in kernels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([stream(x) for stream in self.streams], dim=1)


class ResidualBlock(nn.Module):
    """ResNet basic block: 2 x (conv3x3 + BN + ReLU) with identity or projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SpatialAttention(nn.Module):
    """1x1-conv branch -> one sigmoid weight per position, multiplied into the features."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.branch(x)
        return x * weights, weights


class AMACNN(nn.Module):
    def __init__(self, config: AMACNNConfig) -> None:
        super().__init__()
        if len(config.block_widths) != len(config.block_strides):
            raise ValueError("block_widths and block_strides must have the same length")
        self.config = config
        self.stem = MultiScaleStem(config.in_channels, config.stream_filters, config.stream_kernels)
        self.pool = nn.MaxPool2d(config.stem_pool) if config.stem_pool > 1 else nn.Identity()
        blocks = []
        width = config.stream_filters * len(config.stream_kernels)
        for out_width, stride in zip(config.block_widths, config.block_strides, strict=True):
            blocks.append(ResidualBlock(width, out_width, stride))
            width = out_width
        self.blocks = nn.Sequential(*blocks)
        self.attention = SpatialAttention(width, config.attention_hidden)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, config.fc_units),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.fc_units, config.num_classes),
        )

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, classes) and the attention map (N, 1, h, w) with values in [0, 1]."""
        features = self.blocks(self.pool(self.stem(x)))
        attended, weights = self.attention(features)
        return self.head(attended), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; apply softmax for class probabilities."""
        return self.forward_with_attention(x)[0]


class AMACNNEnsemble(nn.Module):
    """Several AMACNNs of one config whose class probabilities are averaged.

    `forward` returns log mean probabilities, so softmax of its output is the mean of the
    members' softmax: everything that takes a single AMACNN's logits takes an ensemble too.
    """

    def __init__(self, config: AMACNNConfig, members: int) -> None:
        super().__init__()
        if members < 2:
            raise ValueError("an ensemble needs at least two members")
        self.config = config
        self.members = nn.ModuleList(AMACNN(config) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([member(x).softmax(dim=1) for member in self.members]).mean(dim=0)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()


def pick_device(requested: str | None = None) -> torch.device:
    """The device asked for, else CUDA when there is one, else the CPU: every command's default."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def networks_of(model: nn.Module) -> list[AMACNN]:
    """The AMACNNs a model is made of: an ensemble's members, or the one network itself."""
    return list(model.members) if isinstance(model, AMACNNEnsemble) else [model]


def class_probabilities(
    model: nn.Module, batch: torch.Tensor, tta: bool = False, temperature: float = 1.0
) -> torch.Tensor:
    """Softmax of a normalized batch; `tta` averages in the mirrored images; `temperature` (the
    card's, `ModelCard.temperature`) calibrates the result. The one definition of what
    evaluation measures and `fer-mine run` uses. A model that classifies in two steps
    (amacnn/int8.py, `CloseCallsInFloat32`) answers for itself."""
    if hasattr(model, "class_probabilities"):
        return model.class_probabilities(batch, tta, temperature)
    probabilities = model(batch).softmax(dim=1)
    if tta:
        probabilities = (probabilities + model(batch.flip(3)).softmax(dim=1)) / 2
    return calibrate(probabilities, temperature)


def drop_dead_channels(model: nn.Module) -> nn.Module:
    """Remove, in place and for inference only, each residual block's inner channels whose weights
    into its second convolution are all zero: they add exactly nothing to any output. Adam's L2
    weight decay switched off 160 of the 256 in the shipped models' last block (docs/ablations.md, ablations R
    and T), so amacnn-fer2013 costs 108 MMAC per pass instead of 129, for the same outputs and
    1.14-1.17x the faces/s on 2 CPU cores. Run it before `fold_batchnorm`, which it leaves to fold."""
    for block in [m for m in model.modules() if isinstance(m, ResidualBlock)]:
        keep = block.conv2.weight.detach().abs().amax(dim=(0, 2, 3)).nonzero().flatten()
        if len(keep) in (0, block.conv2.in_channels):  # nothing to drop (or nothing left: keep it whole)
            continue
        # the layers keep their kernel, stride, padding, mode and device: only the channel axis shrinks
        with torch.no_grad():
            for layer, axis in ((block.conv1, 0), (block.conv2, 1)):
                layer.weight = nn.Parameter(layer.weight.index_select(axis, keep))
            if block.conv1.bias is not None:
                block.conv1.bias = nn.Parameter(block.conv1.bias[keep])
            if isinstance(block.bn1, nn.BatchNorm2d):
                for name in ("weight", "bias"):
                    setattr(block.bn1, name, nn.Parameter(getattr(block.bn1, name)[keep]))
                block.bn1.running_mean = block.bn1.running_mean[keep]
                block.bn1.running_var = block.bn1.running_var[keep]
                block.bn1.num_features = len(keep)
        block.conv1.out_channels = block.conv2.in_channels = len(keep)
    return model


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm into the convolution before it, in place, for inference only: the same
    outputs (to 1e-7) with one pass less over every feature map; 1.16x the faces/s of the shipped
    ensemble on 2 CPU cores (benchmarks/inference_speed: 86 against 74). The model must be in
    eval mode."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):  # the stem's streams, projection shortcuts
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
        elif isinstance(module, ResidualBlock):
            module.conv1, module.bn1 = fuse_conv_bn_eval(module.conv1, module.bn1), nn.Identity()
            module.conv2, module.bn2 = fuse_conv_bn_eval(module.conv2, module.bn2), nn.Identity()
    return model


def build_model(preset: str | AMACNNConfig = "cpu", **overrides: object) -> AMACNN:
    """Build an AMACNN from a preset name or a config, with optional field overrides."""
    if isinstance(preset, AMACNNConfig):
        config = preset
    else:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        config = PRESETS[preset].config
    return AMACNN(replace(config, **overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: AMACNN) -> int:
    """Multiply-accumulates for one image, counted by torch's own FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    x = torch.zeros(1, cfg.in_channels, cfg.input_size, cfg.input_size)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def preset_costs() -> list[tuple]:
    """Each preset with its parameters and multiply-accumulates per image: (preset, params, MACs)."""
    costs = []
    for preset in PRESETS.values():
        model = build_model(preset.name)
        costs.append((preset, count_parameters(model), count_macs(model)))
    return costs
