"""int8 inference on the CPU at run time: the int8 network rebuilt from the state `fer-mine
quantize` stored beside the weights (amacnn/quantize.py makes that state).

Two methods, which the card records: `qat` (quantisation-aware fine-tuning; its whole state,
weights in float16 and quantiser ranges, is stored) and `static` (activation ranges observed on
training images; only the observers' state is stored). Rebuilding takes about a second and needs
neither training data nor a pickled module. On CUDA the network stays float32 (these int8
kernels are CPU ones).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble, class_probabilities, networks_of
from fer_mine.defaults import PRECISIONS
from fer_mine.errors import FerMineError

INT8_FILE = "model.int8.safetensors"
ENGINE = "x86"  # oneDNN + FBGEMM kernels; what torch picks on x86 CPUs
METHODS = ("qat", "static")
DEAD_SCALE = 1e-5  # what an exactly-zero BatchNorm scale becomes for QAT (`revived`)


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


def with_quantisers(member: AMACNN, method: str = "static") -> nn.Module:
    """The member with torch.ao's quantisers in place (FX fuses conv + BN + ReLU itself, so the
    model must not have its BatchNorm folded first): observers for a static calibration, or for
    `qat` fake quantisers on a trainable copy (`revived`) whose BatchNorm statistics are frozen
    (the float network's stay: a few hundred steps would only make them noisier)."""
    from torch.ao.nn.intrinsic.qat import freeze_bn_stats
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    torch.backends.quantized.engine = ENGINE
    cfg = member.config
    example = (torch.zeros(2, cfg.in_channels, cfg.input_size, cfg.input_size),)
    if method == "static":
        return prepare_fx(member.eval(), get_default_qconfig_mapping(ENGINE), example)
    prepared = prepare_qat_fx(revived(member).train(), get_default_qat_qconfig_mapping(ENGINE), example)
    prepared.apply(freeze_bn_stats)
    return prepared


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (docs/benchmarks.md, int8)
        yield


def revived(member: AMACNN) -> AMACNN:
    """A copy whose exactly-zero BatchNorm scales are DEAD_SCALE. QAT folds each BatchNorm into its
    convolution and divides by that scale (NaN otherwise); such a channel outputs its shift either
    way. Weight decay zeroes many: 293 of the 1,440 in amacnn-fer2013."""
    member = copy.deepcopy(member)
    with torch.no_grad():
        for module in member.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight[module.weight == 0] = DEAD_SCALE
    return member


def convert(
    model: AMACNN | AMACNNEnsemble, state: dict[str, torch.Tensor], method: str = "static"
) -> nn.Module:
    """The int8 network from float weights (BatchNorm not folded) and the state `method` saved:
    a static calibration's observers, or a QAT fine-tuning's whole state (its own weights)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    if method not in METHODS:
        raise FerMineError(f"unknown int8 method {method!r} in the model card; run `fer-mine quantize` again")
    converted = []
    with quiet():
        for index, member in enumerate(networks_of(model)):
            prepared = with_quantisers(member, method)
            mine = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(index)}
            expected = {k for k in prepared.state_dict() if method == "qat" or "activation_post_process" in k}
            if set(mine) != expected:  # another torch numbers its observers differently
                raise FerMineError(
                    f"the stored int8 state does not fit this torch ({torch.__version__}); run "
                    "`fer-mine quantize` again for this model, or use --precision float32"
                )
            prepared.load_state_dict(mine, strict=False)
            converted.append(convert_fx(prepared.eval()))
    if isinstance(model, AMACNNEnsemble):
        model.members = nn.ModuleList(converted)
        return model
    return Int8AMACNN(model.config, converted[0])


class CloseCallsInFloat32(nn.Module):
    """The int8 network, with its close calls classified again in float32: a face whose top two
    calibrated probabilities in int8 are nearer than `margin` gets float32's probabilities
    instead. int8 and float32 differ by a little noise, which can only change the label where
    the first two labels are that close; the card's margin is the smallest at which every
    validation face gets float32's label (`quantize.refine_margin`)."""

    def __init__(self, int8: nn.Module, float32: nn.Module, margin: float) -> None:
        super().__init__()
        self.int8, self.float32, self.margin = int8, float32, margin
        self.config = float32.config
        self.refined = self.seen = 0  # faces classified again, and in all (for benchmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError("CloseCallsInFloat32 classifies through class_probabilities")

    def class_probabilities(self, batch: torch.Tensor, tta: bool, temperature: float) -> torch.Tensor:
        probabilities = class_probabilities(self.int8, batch, tta, temperature)
        top = probabilities.topk(2, dim=1).values
        close = (top[:, 0] - top[:, 1]) < self.margin
        self.seen += len(batch)
        if close.any():
            self.refined += int(close.sum())
            probabilities[close] = class_probabilities(self.float32, batch[close], tta, temperature).to(
                probabilities.dtype
            )
        return probabilities


CACHE_ENV = "FER_MINE_CACHE"  # where rebuilt int8 networks are kept (default: ~/.cache/fer-mine)


class ScriptedInt8(nn.Module):
    """A rebuilt int8 network as TorchScript (traced and frozen), keeping the `config` callers read."""

    def __init__(self, config, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.config, self.script = config, script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fer-mine"
    )
    return Path(root)


def cached(config, int8_sha256: str, build: Callable[[], nn.Module]) -> nn.Module:
    """The int8 network `build` makes, kept in the user's cache as TorchScript: rebuilding an
    ensemble's four networks from their stored state costs about 2 s at every run start (torch.ao
    prepares each network again), loading the traced copy 0.04 s, and it runs as fast or faster
    (identical outputs: tests/test_weights.py). Keyed by the int8 state's sha256 and the torch
    version; made again when absent or unreadable, and not kept where the cache cannot be written."""
    path = cache_dir() / f"int8-{int8_sha256[:24]}-torch{torch.__version__}.pt"
    if path.is_file():
        try:
            with quiet():  # torch 2.13 calls TorchScript deprecated; it loads and runs
                return ScriptedInt8(config, torch.jit.load(str(path), map_location="cpu"))
        except (RuntimeError, OSError, AttributeError):
            pass  # damaged, from another build, or a torch without TorchScript: made again below
    model = build().eval()
    example = torch.zeros(2, config.in_channels, config.input_size, config.input_size)
    try:
        with quiet(), torch.no_grad():
            script = torch.jit.freeze(torch.jit.trace(model, example))
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            torch.jit.save(script, str(partial))
            os.replace(partial, path)
    except (RuntimeError, OSError, AttributeError):
        return model  # no TorchScript, or no cache here: the rebuilt network as it is
    return ScriptedInt8(config, script)


def load_int8_state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def resolve_precision(requested: str, card, device: str) -> str:
    """float32 or int8: `auto` is int8 on the CPU where the card keeps its int8 network."""
    if requested not in PRECISIONS:
        raise FerMineError(f"unknown precision {requested!r}; choose from {', '.join(PRECISIONS)}")
    on_cpu = torch.device(device).type == "cpu"
    if requested == "auto":
        return "int8" if on_cpu and card.int8.get("kept") and supported() else "float32"
    if requested == "int8":
        if not on_cpu:
            raise FerMineError("int8 runs on the CPU only; use --precision float32 (or auto) on CUDA")
        if not card.int8:
            raise FerMineError(f"{card.name} has no int8 network; make one with `fer-mine quantize`")
        if not supported():
            raise FerMineError(f"this torch has no {ENGINE} int8 engine; use --precision float32")
    return requested
