"""int8 inference on the CPU: torch.ao FX static quantisation, with its calibration stored.

Calibration (activation ranges observed on 1,024 training images, never validation ones) runs
once, in `fer-mine quantize`, and its observer state is saved beside the weights as
`model.int8.safetensors`, its sha256 in the card. Loading rebuilds the int8 network from the
float weights and that state, identically and in under a second, so neither training data nor a
pickled module ships. The card says whether int8 is kept: only when its validation accuracy,
with the TTA `run` uses, is within 0.1 point of float32 (issue 11, item 6); then `run` and
`evaluate` use it on the CPU unless told `--precision float32`. On CUDA the network stays
float32 (these int8 kernels are CPU ones).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble, networks_of
from fer_mine.errors import FerMineError
from fer_mine.pipeline.defaults import PRECISIONS

INT8_FILE = "model.int8.safetensors"
ENGINE = "x86"  # oneDNN + FBGEMM kernels; what torch picks on x86 CPUs
CALIBRATION_IMAGES = 1024
TOLERANCE = 0.001  # int8 is kept when validation accuracy falls by no more than this


class Int8AMACNN(nn.Module):
    """One AMACNN converted to int8 (a torch.fx GraphModule), keeping the `config` callers read."""

    def __init__(self, config, graph: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


def supported() -> bool:
    return ENGINE in torch.backends.quantized.supported_engines


def _prepared(member: AMACNN) -> nn.Module:
    """The member with torch.ao's observers in place (FX fuses conv + BN + ReLU itself, so the
    model must not have its BatchNorm folded first)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = ENGINE
    cfg = member.config
    example = torch.zeros(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    return prepare_fx(member.eval(), get_default_qconfig_mapping(ENGINE), (example,))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (README, Benchmarks)
        yield


def calibrate(model: AMACNN | AMACNNEnsemble, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Observer state of every member after seeing `images` (normalised, N x C x H x W), keys
    prefixed with the member's index."""
    state = {}
    with _quiet(), torch.no_grad():
        for index, member in enumerate(networks_of(model)):
            prepared = _prepared(member)
            for start in range(0, len(images), 128):
                prepared(images[start : start + 128])
            observed = prepared.state_dict().items()
            state.update({f"{index}.{k}": v for k, v in observed if "activation_post_process" in k})
    return state


def quantize(model: AMACNN | AMACNNEnsemble, state: dict[str, torch.Tensor]) -> nn.Module:
    """The int8 network from float weights (BatchNorm not folded) and a calibration's state."""
    from torch.ao.quantization.quantize_fx import convert_fx

    converted = []
    with _quiet():
        for index, member in enumerate(networks_of(model)):
            prepared = _prepared(member)
            mine = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(index)}
            expected = {k for k in prepared.state_dict() if "activation_post_process" in k}
            if set(mine) != expected:  # another torch numbers its observers differently
                raise FerMineError(
                    f"the int8 calibration does not fit this torch ({torch.__version__}); run "
                    "`fer-mine quantize` again for this model, or use --precision float32"
                )
            prepared.load_state_dict(mine, strict=False)
            converted.append(convert_fx(prepared))
    if isinstance(model, AMACNNEnsemble):
        model.members = nn.ModuleList(converted)
        return model
    return Int8AMACNN(model.config, converted[0])


def save_calibration(state: dict[str, torch.Tensor], path: Path) -> None:
    # observers shared by several inputs (the stem's concatenation) appear under each name: copies
    save_file({k: v.clone().contiguous() for k, v in state.items()}, str(path), metadata={"engine": ENGINE})


def load_calibration(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def resolve_precision(requested: str, card, device: str) -> str:
    """float32 or int8: `auto` is int8 on the CPU where the card keeps an int8 calibration."""
    if requested not in PRECISIONS:
        raise FerMineError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    on_cpu = torch.device(device).type == "cpu"
    if requested == "auto":
        return "int8" if on_cpu and card.int8.get("kept") and supported() else "float32"
    if requested == "int8":
        if not on_cpu:
            raise FerMineError("int8 runs on the CPU only; use --precision float32 (or auto) on CUDA")
        if not card.int8:
            raise FerMineError(f"{card.name} has no int8 calibration; make one with `fer-mine quantize`")
        if not supported():
            raise FerMineError(f"this torch has no {ENGINE} int8 engine; use --precision float32")
    return requested


def calibrate_model(model_path: str | Path | None, data_root: Path, tta: bool, log=print) -> dict:
    """Calibrate a model on its own training images, store the calibration beside its weights,
    score float32 and int8 on its validation split (with `tta`) and record in its card whether
    int8 is kept. Returns the card's int8 entry."""
    from fer_mine.amacnn.catalog import CARD_FILE
    from fer_mine.amacnn.ensemble import validation_data
    from fer_mine.amacnn.train import _to_device_images, evaluate_loaded
    from fer_mine.amacnn.weights import load_model, read_card, sha256_of, write_card

    if not supported():
        raise FerMineError(f"this torch has no {ENGINE} int8 engine")
    card, weights_path = read_card(model_path)
    data = validation_data(card, data_root, log)
    chosen = torch.randperm(len(data.train.labels), generator=torch.Generator().manual_seed(0))
    chosen = chosen[:CALIBRATION_IMAGES].numpy()
    images = card.preprocess.normalize(_to_device_images(data.train.images[chosen], torch.device("cpu")))
    log(f"calibrating int8 on {len(chosen)} training images of {card.name}")
    state = calibrate(load_model(model_path, fold_bn=False)[0], images)
    path = weights_path.with_name(INT8_FILE)
    save_calibration(state, path)
    accuracy = {}
    for precision, model in (
        ("float32", load_model(model_path)[0]),
        ("int8", quantize(load_model(model_path, fold_bn=False)[0], state)),
    ):
        log(f"scoring {precision} on {len(data.val.labels)} validation images")
        accuracy[precision] = evaluate_loaded(model, data.val, card.preprocess, card.labels, tta)["accuracy"]
    card.int8 = {
        "file": INT8_FILE,
        "sha256": sha256_of(path),
        "engine": ENGINE,
        "torch": torch.__version__,
        "calibration": f"{len(chosen)} training images (seed 0), never validation ones",
        "validation": {"images": len(data.val.labels), "tta": tta, **accuracy},
        # the rule for a CPU speed-up: equal accuracy, within 0.1 point
        "kept": accuracy["int8"] >= accuracy["float32"] - TOLERANCE,
    }
    write_card(card, weights_path.with_name(CARD_FILE))
    return card.int8
