"""int8 inference on the CPU: torch.ao FX quantisation, with what it learned stored.

`fer-mine quantize` runs once per model, on its training images (never validation ones), by one
of two methods the card records:
- `qat` (the default): quantisation-aware fine-tuning. A fake-quantised copy of the network
  learns the float32 network's own outputs for a few hundred steps, so int8 follows float32
  rather than drifting towards the labels (docs/benchmarks.md, int8; commit 0a5de0d). Its whole state
  (weights in float16, quantiser ranges) is saved.
- `static`: activation ranges observed on 1,024 images, the weights untouched; only the
  observers' state is saved.
Either is saved beside the weights as `model.int8.safetensors`, its sha256 in the card. Loading
rebuilds the int8 network from that state, identically and in about a second, so neither
training data nor a pickled module ships. The card says whether int8 is kept: only when its
validation accuracy, with the TTA `run` uses, is within 0.1 point of float32;
then `run` and `evaluate` use it on the CPU unless told `--precision float32`. On CUDA the
network stays float32 (these int8 kernels are CPU ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fer_mine.amacnn.calibration import calibrate
from fer_mine.amacnn.catalog import CARD_FILE
from fer_mine.amacnn.ensemble import validation_data
from fer_mine.amacnn.int8 import (
    ENGINE,
    INT8_FILE,
    convert,
    load_int8_state,
    quiet,
    supported,
    with_quantisers,
)
from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble, networks_of
from fer_mine.amacnn.predict import split_probabilities, to_device_images
from fer_mine.amacnn.recipe import QAT_STEPS
from fer_mine.amacnn.weights import load_model, read_card, verify_int8_state, write_card
from fer_mine.errors import FerMineError
from fer_mine.media.hashing import sha256_of
from fer_mine.transforms.augment import training_augmentation
from fer_mine.transforms.preprocess import Preprocess

CALIBRATION_IMAGES = 1024
# quantisation-aware fine-tuning: QAT_STEPS (the recipe's) batches of QAT_BATCH, 1.4 passes over
# FER-2013's training images
QAT_BATCH = 128
QAT_LR = 1e-5  # Adam, cosine to 0: a nudge, the float32 weights are already good
QAT_OBSERVE_BATCHES = 8  # batches that set the ranges before the first step
TOLERANCE = 0.001  # int8 is kept when validation accuracy falls by no more than this
# int8 with its close calls in float32 (int8.CloseCallsInFloat32): margins tried, and the largest
# share of faces it may classify twice and still be kept (beyond it, float32 alone is as cheap)
MAX_MARGIN = 0.3
MAX_REFINED = 0.25


def observe_ranges(model: AMACNN | AMACNNEnsemble, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Observer state of every member after seeing `images` (normalised, N x C x H x W), keys
    prefixed with the member's index."""
    state = {}
    with quiet(), torch.no_grad():
        for index, member in enumerate(networks_of(model)):
            prepared = with_quantisers(member)
            for start in range(0, len(images), 128):
                prepared(images[start : start + 128])
            observed = prepared.state_dict().items()
            state.update({f"{index}.{k}": v for k, v in observed if "activation_post_process" in k})
    return state


def fine_tune(
    model: AMACNN | AMACNNEnsemble,
    images: torch.Tensor,
    preprocess: Preprocess,
    steps: int = QAT_STEPS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Quantisation-aware fine-tuning of every member on uint8 `images` (N x C x H x W): the
    fake-quantised copy learns the float network's softmax (KL divergence) on augmented images,
    its ranges observed for the first half of the steps, then fixed. Returns every member's
    whole state (keys prefixed with the member's index) for `int8.convert(..., method="qat")`."""
    from torch.ao.quantization import disable_observer

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the augmentation draws from torch's global generator
    augment = training_augmentation(1.0)
    members = networks_of(model)
    state = {}
    with quiet():
        for index, member in enumerate(members):
            member.eval()
            student = with_quantisers(member, "qat")
            with torch.no_grad():
                for start in range(0, QAT_OBSERVE_BATCHES * QAT_BATCH, QAT_BATCH):
                    student(preprocess.normalize(images[start : start + QAT_BATCH]))
            optimizer = torch.optim.Adam(student.parameters(), lr=QAT_LR)
            for step in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = QAT_LR * 0.5 * (1 + math.cos(math.pi * step / steps))
                chosen = torch.randint(len(images), (QAT_BATCH,), generator=generator)
                batch = augment(images[chosen].float().div_(255.0)).clamp_(0.0, 1.0)
                batch = preprocess.normalize(batch)
                with torch.no_grad():
                    target = member(batch).softmax(dim=1)
                loss = F.kl_div(student(batch).log_softmax(dim=1), target, reduction="batchmean")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step + 1 == steps // 2:
                    student.apply(disable_observer)
                if progress:
                    progress(index * steps + step + 1, len(members) * steps)
            state.update({f"{index}.{k}": v.detach() for k, v in student.state_dict().items()})
    return state


def save_int8_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """Observers shared by several inputs (the stem's concatenation) appear under each name, so
    each is copied. A QAT state's weights are stored in float16 (half the size; int8 keeps 8
    bits of them), its quantiser ranges in float32; `quantize_model` scores what was stored."""

    def stored(key: str, value: torch.Tensor) -> torch.Tensor:
        ranges = "fake_quant" in key or "activation_post_process" in key
        return value.half() if value.is_floating_point() and not ranges else value

    tensors = {k: stored(k, v).clone().contiguous() for k, v in state.items()}
    save_file(tensors, str(path), metadata={"engine": ENGINE})


def refine_margin(float32: np.ndarray, int8: np.ndarray) -> float | None:
    """The smallest margin (a grid of 0.01 up to MAX_MARGIN) at which int8 with its close calls
    classified again in float32 (`int8.CloseCallsInFloat32`) gives every face float32's label;
    None if none does. Both: calibrated probabilities (N, classes) of the same faces."""
    top = np.sort(int8, axis=1)
    margin = top[:, -1] - top[:, -2]
    differs = int8.argmax(axis=1) != float32.argmax(axis=1)
    for step in range(round(MAX_MARGIN / 0.01) + 1):
        if not np.any(differs & (margin >= step * 0.01)):
            return round(step * 0.01, 2)
    return None


def quantize_model(
    model_path: str | Path | None,
    data_root: Path,
    tta: bool,
    qat_steps: int = QAT_STEPS,
    log=print,
    progress: Callable[[int, int], None] | None = None,
    rescore: bool = False,
) -> dict:
    """Quantise a model on its own training images (QAT for `qat_steps`, or a static calibration
    when 0), store the result beside its weights (or, `rescore`, take the int8 state stored
    there), score float32 and the stored int8 on its validation split (with `tta`) and record in
    its card whether int8 is kept, and the margin under which its close calls go to float32.
    Returns the card's int8 entry."""
    if not supported():
        raise FerMineError(f"this torch has no {ENGINE} int8 engine")
    card, weights_path = read_card(model_path)
    data = validation_data(card, data_root, log)
    path = weights_path.with_name(INT8_FILE)
    if rescore:
        if not card.int8:
            raise FerMineError(f"{card.name} has no int8 state to score again; quantise it first")
        verify_int8_state(card, weights_path)
        method, how = card.int8_method, card.int8["calibration"]
    else:
        method, how = _quantise(model_path, card, data, qat_steps, log, progress, path)
    temperature = card.temperature(tta)
    probabilities = {}
    for precision, model in (
        ("float32", load_model(model_path)[0]),
        ("int8", convert(load_model(model_path, inference=False)[0], load_int8_state(path), method)),
    ):
        log(f"scoring {precision} on {len(data.val.labels)} validation images")
        raw = torch.from_numpy(split_probabilities(model, data.val, card.preprocess, tta))
        probabilities[precision] = calibrate(raw, temperature).numpy()
    accuracy = {p: float((v.argmax(axis=1) == data.val.labels).mean()) for p, v in probabilities.items()}
    margin = refine_margin(probabilities["float32"], probabilities["int8"])
    top = np.sort(probabilities["int8"], axis=1)
    refined = float(np.mean(top[:, -1] - top[:, -2] < margin)) if margin is not None else None
    card.int8 = {
        "file": INT8_FILE,
        "sha256": sha256_of(path),
        "engine": ENGINE,
        "torch": torch.__version__,
        "method": method,
        "calibration": how,
        "validation": {"images": len(data.val.labels), "tta": tta, **accuracy},
        # the rule for a CPU speed-up: equal accuracy, within 0.1 point; or, where int8 alone
        # falls short, int8 with its close calls in float32, when that classifies at most
        # MAX_REFINED of the faces twice (it then gives float32's label to every validation face)
        "kept": accuracy["int8"] >= accuracy["float32"] - TOLERANCE
        or (refined is not None and refined <= MAX_REFINED),
    }
    if accuracy["int8"] < accuracy["float32"] - TOLERANCE and card.int8["kept"]:
        card.int8 |= {"refine_margin": margin, "refined_share": round(refined, 4)}
    write_card(card, weights_path.with_name(CARD_FILE))
    return card.int8


def _quantise(model_path, card, data, qat_steps: int, log, progress, path: Path) -> tuple[str, str]:
    """QAT or a static calibration on the model's training images, saved at `path`: (method, how)."""
    images = to_device_images(data.train.images, torch.device("cpu"))
    if qat_steps:
        log(
            f"quantisation-aware fine-tuning of {card.name}: {qat_steps} steps of {QAT_BATCH} training images"
        )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        state = fine_tune(load_model(model_path, inference=False)[0], images[order], card.preprocess, qat_steps,
                          progress=progress)  # fmt: skip
        how = (
            f"quantisation-aware fine-tuning: {qat_steps} steps of {QAT_BATCH} augmented training images "
            f"(seed 0; never validation ones), Adam lr {QAT_LR} cosine, towards float32's own outputs"
        )
    else:
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:CALIBRATION_IMAGES]
        log(f"calibrating int8 on {len(chosen)} training images of {card.name}")
        state = observe_ranges(
            load_model(model_path, inference=False)[0], card.preprocess.normalize(images[chosen])
        )
        how = f"static: activation ranges of {len(chosen)} training images (seed 0), never validation ones"
    save_int8_state(state, path)
    return ("qat" if qat_steps else "static"), how
