"""Weights on disk: a safetensors file plus a model card JSON beside it.

The card is the one record of what a set of weights is: architecture config,
preprocessing, label order, training data and recipe, measured metrics and the
sha256 of the weights file, which is checked before any byte is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fer_mine.amacnn.catalog import CARD_FILE, resolve_model
from fer_mine.amacnn.int8 import CloseCallsInFloat32, cached, convert, load_int8_state, resolve_precision
from fer_mine.amacnn.model import AMACNN, AMACNNConfig, AMACNNEnsemble, drop_dead_channels, fold_batchnorm
from fer_mine.errors import FerMineError
from fer_mine.media.hashing import sha256_of
from fer_mine.transforms.preprocess import Preprocess

CARD_FORMAT = "fer-mine/model-card/v1"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class ModelCard:
    name: str
    config: AMACNNConfig
    preprocess: Preprocess
    labels: tuple[str, ...]
    sha256: str = ""
    weights_file: str = WEIGHTS_FILE
    preset: str = ""
    members: int = 1  # more than one: an ensemble of that many AMACNNs, probabilities averaged
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # `fer-mine quantize`'s int8: method (qat, static), file, sha256, validation figures, whether kept
    int8: dict = field(default_factory=dict)
    # `fer-mine calibrate`'s temperature scaling per TTA setting ("plain", "tta"), fitted on the
    # validation split: amacnn/calibration.py. Absent: probabilities as the network gives them.
    calibration: dict = field(default_factory=dict)

    def temperature(self, tta: bool) -> float:
        return float(self.calibration.get(_tta_key(tta), {}).get("temperature", 1.0))

    def uncertain_below(self, tta: bool) -> float | None:
        """Calibrated confidence under which a face is `uncertain`; None: the card has no cut-off."""
        return self.calibration.get(_tta_key(tta), {}).get("uncertain_below")

    def to_dict(self) -> dict:
        card = {
            "format": CARD_FORMAT,
            "name": self.name,
            "preset": self.preset,
            "members": self.members,
            "weights_file": self.weights_file,
            "sha256": self.sha256,
            "labels": list(self.labels),
            "config": self.config.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
        }
        if self.int8:
            card["int8"] = self.int8
        if self.calibration:
            card["calibration"] = self.calibration
        return card

    @property
    def int8_method(self) -> str:
        """How `fer-mine quantize` made the int8 network: qat, or static (cards before commit 0a5de0d)."""
        return self.int8.get("method", "static")

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        if data.get("format") != CARD_FORMAT:
            raise FerMineError(f"not a fer-mine model card (format {data.get('format')!r})")
        return cls(
            name=data["name"],
            config=AMACNNConfig.from_dict(data["config"]),
            preprocess=Preprocess.from_dict(data["preprocess"]),
            labels=tuple(data["labels"]),
            sha256=data["sha256"],
            weights_file=data.get("weights_file", WEIGHTS_FILE),
            preset=data.get("preset", ""),
            members=int(data.get("members", 1)),
            training=data.get("training", {}),
            metrics=data.get("metrics", {}),
            int8=data.get("int8", {}),
            calibration=data.get("calibration", {}),
        )


def _tta_key(tta: bool) -> str:
    return "tta" if tta else "plain"


def build_from_card(card: ModelCard) -> AMACNN | AMACNNEnsemble:
    """The untrained network a card describes: one AMACNN, or an ensemble of them."""
    return AMACNN(card.config) if card.members == 1 else AMACNNEnsemble(card.config, card.members)


def save_model(
    model: AMACNN | AMACNNEnsemble, card: ModelCard, folder: Path, dtype: torch.dtype | None = None
) -> ModelCard:
    """Write weights and card into `folder`; returns the card with its sha256 filled in.
    `dtype` stores floating tensors in that type (loading casts them back to float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / card.weights_file
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    # one metadata key: safetensors writes several in an order that changes from process to
    # process, and then the same weights would get another sha256 (the name is in the card)
    save_file(state, str(weights_path), metadata={"format": CARD_FORMAT})
    card.sha256 = sha256_of(weights_path)
    write_card(card, folder / CARD_FILE)
    return card


def write_card(card: ModelCard, path: Path) -> None:
    path.write_text(json.dumps(card.to_dict(), indent=2) + "\n")


def read_card(model_path: str | Path | None) -> tuple[ModelCard, Path]:
    """The card for a model folder, card file or weights file, or a shipped model's name."""
    path = resolve_model(model_path)
    if path.is_dir():
        card_path = path / CARD_FILE
    elif path.suffix == ".json":
        card_path = path
    else:
        card_path = path.with_name(CARD_FILE)
    if not card_path.is_file():
        raise FerMineError(f"no fer-mine model card ({CARD_FILE}) found for {path}")
    try:
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FerMineError(f"{card_path} is not a fer-mine model card: {exc}") from None
    return card, card_path.parent / card.weights_file


def verify_weights(model_path: str | Path | None = None) -> tuple[ModelCard, Path]:
    """The card and weights path of a model whose weights file matches the card's sha256."""
    card, weights_path = read_card(model_path)
    if not weights_path.is_file():
        raise FerMineError(f"weights file missing: {weights_path}")
    actual = sha256_of(weights_path)
    if actual != card.sha256:
        raise FerMineError(
            f"{weights_path}: sha256 {actual[:12]} does not match its model card "
            f"({card.sha256[:12]}); the file is damaged or not the one the card describes"
        )
    return card, weights_path


def load_model(
    model_path: str | Path | None = None,
    device: str = "cpu",
    inference: bool = True,
    precision: str = "float32",
) -> tuple[nn.Module, ModelCard]:
    """Verify the weights' sha256 against the card, then load them (safetensors: no pickle), in
    eval mode. `inference` gives the float32 network its inference form, the same outputs for less
    work: dead channels dropped and BatchNorm folded into the convolutions (the weights no longer
    train, nor save as a card's layers). `precision` int8 (or auto: int8 on the CPU where
    the card keeps a calibration) rebuilds the int8 network (amacnn/int8.py)."""
    card, weights_path = verify_weights(model_path)
    precision = resolve_precision(precision, card, device)
    model = _float_network(card, weights_path)
    if precision == "int8":
        state_path = verify_int8_state(card, weights_path)
        int8 = cached(card.config, card.int8["sha256"],
                      lambda: convert(model, load_int8_state(state_path), card.int8_method))  # fmt: skip
        margin = card.int8.get("refine_margin")
        if margin is None:
            return int8, card
        # close calls again in float32 (int8.CloseCallsInFloat32): the float network in its
        # inference form beside the int8 one
        exact = fold_batchnorm(drop_dead_channels(_float_network(card, weights_path)))
        return CloseCallsInFloat32(int8, exact.to(memory_format=torch.channels_last), margin), card
    if inference:
        fold_batchnorm(drop_dead_channels(model))
    model.to(device=device, memory_format=torch.channels_last)
    return model, card


def _float_network(card: ModelCard, weights_path: Path) -> nn.Module:
    try:
        state = load_file(str(weights_path))
        model = build_from_card(card)
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError, ValueError) as exc:
        raise FerMineError(f"{weights_path} is not a fer-mine AMACNN weights file: {exc}") from None
    return model.eval()


def verify_int8_state(card: ModelCard, weights_path: Path) -> Path:
    """The int8 state file beside the weights, checked against the card's sha256."""
    path = weights_path.with_name(card.int8["file"])
    if not path.is_file():
        raise FerMineError(f"int8 state missing: {path}; use --precision float32")
    if sha256_of(path) != card.int8["sha256"]:
        raise FerMineError(f"{path} does not match its model card's sha256; use --precision float32")
    return path
