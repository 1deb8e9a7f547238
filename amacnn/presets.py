"""The network presets: AMACNN's hyperparameters per size, kept free of torch so that the CLI's
--help can list them without loading it (`model.py` builds the layers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class AMACNNConfig:
    input_size: int = 48
    in_channels: int = 1
    num_classes: int = 7
    stream_filters: int = 32  # per stream; the stem outputs 3x this
    stream_kernels: tuple[int, ...] = (3, 5, 7)
    stem_pool: int = 2  # max-pool factor right after the stem (1 = none)
    block_widths: tuple[int, ...] = (64, 128, 256)
    block_strides: tuple[int, ...] = (1, 2, 2)
    attention_hidden: int = 32  # width of the 1x1-conv attention branch
    fc_units: int = 256
    dropout: float = 0.4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AMACNNConfig:
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return cls(**{**data, **tuples})


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    config: AMACNNConfig = field(default_factory=AMACNNConfig)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "paper",
            "as published: 128x128x3, 64 filters per stream; pool 2 after the stem, "
            "three strided residual blocks",
            AMACNNConfig(
                input_size=128,
                in_channels=3,
                stream_filters=64,
                stem_pool=2,
                block_widths=(128, 256, 512),
                block_strides=(2, 2, 2),
                attention_hidden=64,
            ),
        ),
        Preset(
            "cpu",
            "48x48 gray, 32 filters per stream, pool 2 after the stem: a full "
            "FER-2013 run fits in about 2 h on 2 CPU cores",
            AMACNNConfig(),
        ),
        Preset(
            "tiny",
            "for tests and smoke runs: 32x32 gray, 8 filters per stream",
            AMACNNConfig(
                input_size=32,
                stream_filters=8,
                block_widths=(16, 32, 32),
                block_strides=(1, 2, 2),
                attention_hidden=8,
                fc_units=32,
            ),
        ),
    )
}
