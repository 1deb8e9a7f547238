"""Read dlib's face-recognition network out of its file once, into float16 safetensors for
`people/network.py`. Run from the repository root:

    python tools/convert_dlib_face_recognition.py ../shared/models/dlib-face-recognition/dlib_face_recognition_resnet_model_v1.dat

dlib writes a network layer by layer from the input up, each led by its name ("con_4",
"affine_", ...); integers are a length byte (high bit: negative) and that many little-endian
bytes, tensors a version, four dimensions and raw float32. Only the layers with parameters are
read; the order of every layer is checked against the architecture `people/network.py` builds.
With dlib installed (`pip install dlib-bin`) it also compares the two on random chips.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from fer_mine.people.network import BLOCKS, FaceEmbedder

SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
OUTPUT = Path(__file__).resolve().parents[1] / "people" / "weights" / "dlib-resnet"


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def int(self) -> int:
        head = self.data[self.at]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.at + 1 : self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if head & 0x80 else value

    def tensor(self) -> np.ndarray:
        version = self.int()
        assert version == 2, f"tensor format {version}"
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        values = np.frombuffer(self.data, "<f4", count, self.at)
        self.at += 4 * count
        return values


def layers(data: bytes) -> list[tuple[str, int]]:
    """(name, offset after the name) of every layer, input first."""
    names = rb"con_4|affine_|relu_|max_pool_2|avg_pool_2|add_prev_|fc_2"
    return [(m.group(2).decode(), m.end()) for m in re.finditer(rb"\x01([\x04-\x0a])(" + names + rb")", data)
            if len(m.group(2)) == m.group(1)[0]]  # fmt: skip


def expected() -> list[str]:
    order = ["con_4", "affine_", "relu_", "max_pool_2"]
    for _, stride in BLOCKS:
        order += ["con_4", "affine_", "relu_", "con_4", "affine_"]
        order += ["avg_pool_2"] if stride == 2 else []
        order += ["add_prev_", "relu_"]
    return [*order, "avg_pool_2", "fc_2"]


def convert(path: Path) -> dict[str, torch.Tensor]:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        sys.exit(f"{path}: not the file SOURCE.md names (sha256 differs)")
    found = layers(data)
    if [name for name, _ in found] != expected():
        sys.exit("the layers in the file are not the architecture people/network.py builds")
    convs = [f"blocks.{i}.conv{j}" for i in range(len(BLOCKS)) for j in (1, 2)]
    affines = [f"blocks.{i}.bn{j}" for i in range(len(BLOCKS)) for j in (1, 2)]
    convs, affines = ["conv", *convs], ["bn", *affines]
    state = FaceEmbedder().state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, offset in found:
        reader = Reader(data)
        reader.at = offset
        if name == "con_4":
            key = convs.pop(0)
            params = reader.tensor()
            weight = state[f"{key}.weight"]
            filters, size = reader.int(), (reader.int(), reader.int())
            strides, pad = (reader.int(), reader.int()), (reader.int(), reader.int())
            module = dict(FaceEmbedder().named_modules())[key]
            assert filters == weight.shape[0] and size == tuple(weight.shape[2:]), key
            assert strides == module.stride and pad == module.padding, (key, strides, pad)
            out[f"{key}.weight"] = torch.from_numpy(params[: weight.numel()].reshape(weight.shape).copy())
            out[f"{key}.bias"] = torch.from_numpy(params[weight.numel() :].copy())
        elif name == "affine_":
            key = affines.pop(0)
            params = reader.tensor()
            half = len(params) // 2
            out[f"{key}.gamma"] = torch.from_numpy(params[:half].copy())
            out[f"{key}.beta"] = torch.from_numpy(params[half:].copy())
        elif name == "fc_2":
            outputs, inputs = reader.int(), reader.int()
            params = reader.tensor()  # (inputs, outputs), row-major: y = x W
            out["fc.weight"] = torch.from_numpy(params.reshape(inputs, outputs).T.copy())
    assert out.keys() == state.keys(), set(state) ^ set(out)
    return out


def compare_with_dlib(model: FaceEmbedder, path: Path) -> None:
    try:
        import dlib
    except ImportError:
        print("dlib not installed: not compared")
        return
    reference = dlib.face_recognition_model_v1(str(path))
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(8):
        chip = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
        chip = np.ascontiguousarray(
            np.clip(chip.astype(np.float32) * 0.2 + np.linspace(40, 200, 150)[None, :, None], 0, 255).astype(
                np.uint8
            )
        )
        theirs = np.array(reference.compute_face_descriptor(chip))
        with torch.no_grad():
            ours = model(torch.from_numpy(chip).permute(2, 0, 1)[None])[0].double().numpy()
        gaps.append(float(np.linalg.norm(theirs - ours)))
    print(f"distance to dlib's own embeddings on 8 chips: at most {max(gaps):.2e} (same person: under 0.6)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dat", type=Path)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    weights = convert(args.dat)
    model = FaceEmbedder()
    model.load_state_dict(weights)
    model.eval()
    compare_with_dlib(model, args.dat)
    half = {k: v.half().contiguous() for k, v in weights.items()}
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / "model.safetensors"
    save_file(
        half, target, metadata={"source": "dlib_face_recognition_resnet_model_v1.dat", "sha256": SHA256}
    )
    model.load_state_dict({k: v.float() for k, v in half.items()})
    compare_with_dlib(model, args.dat)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (args.output / "model.json").write_text(
        json.dumps({"sha256": digest, "dtype": "float16"}, indent=2) + "\n"
    )
    print(f"{target}: {target.stat().st_size:,} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
