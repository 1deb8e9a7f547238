"""Faces/s of a shipped classifier as `fer-mine run` calls it, and of the CPU speed-ups on offer.

    python -m benchmarks.inference_speed [--model amacnn-fer2013] [--batch 64] [--repeats 7]
                                         [--data-root ../shared/data] [--baseline MODEL]

Variants: eager float32 channels_last with the dead channels dropped and BatchNorm folded into the
convolutions (what `run` does with --precision float32, and on CUDA), the same with the dead
channels kept, the same with neither, eager contiguous (NCHW),
torch.compile, int8 dynamic quantisation of the linear layers and, where the card has one, the
int8 network `fer-mine quantize` stored (torch.ao FX graph mode, x86 engine; quantisation-aware
fine-tuning or a static calibration, as the card says: what `run` uses on the CPU when the card
keeps it). Each is
timed on batches of preprocessed faces with flip TTA (two passes, as `run` classifies), median
of --repeats, the variants interleaved round by round: random faces, or with --data-root 8
batches of real ones (the first validation pictures), which a model that classifies its close
calls again needs to be timed fairly. With --data-root the variants' validation accuracy is printed beside (a speed-up is
only worth taking at equal accuracy, within 0.1 point). --baseline times another model (say
the previous default, restored from git) as `run` calls it in the same rounds, as the first row:
the x column is then relative to it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fer_mine.amacnn.model import class_probabilities
from fer_mine.amacnn.weights import ModelCard, load_model


def variants(
    model: torch.nn.Module, unfolded: torch.nn.Module, model_path: str | None, card: ModelCard
) -> dict[str, torch.nn.Module]:
    import copy

    from fer_mine.amacnn.model import fold_batchnorm

    eager_nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    quantised = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
    )
    kept = bool(card.int8 and card.int8["kept"])
    float32 = "--precision float32" if kept else "run's default on CPU"
    found = {
        f"float32, channels_last, dead channels dropped, BN folded ({float32})": model,
        "float32, channels_last, dead channels kept, BN folded": fold_batchnorm(copy.deepcopy(unfolded)),
        "float32, channels_last, neither": unfolded,
        "float32, contiguous NCHW": eager_nchw,
        "float32, torch.compile": torch.compile(copy.deepcopy(model)),
        "int8 dynamic (linear layers only)": quantised,
    }
    if card.int8:  # `fer-mine quantize`'s calibration, as run loads it
        kept = "run's default on CPU" if card.int8["kept"] else "not kept: --precision int8"
        refined = ", close calls in float32" if "refine_margin" in card.int8 else ""
        found[f"int8 {card.int8_method}{refined}, shipped ({kept})"] = load_model(
            model_path, precision="int8"
        )[0]
    return found


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")  # the int8 variants' calls
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--baseline", help="another model timed in the same rounds, first row")
    args = parser.parse_args()
    model, card = load_model(args.model)
    cfg = card.config
    batch = torch.randn(args.batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    unfolded = load_model(args.model, inference=False)[0]
    models = variants(model, unfolded, args.model, card)
    if args.baseline:
        from fer_mine.amacnn.ensemble import check_shared_split

        baseline, baseline_card = load_model(args.baseline, precision="auto")  # int8 where its card keeps it
        check_shared_split([card, baseline_card])  # the same validation images, the same input
        label = f"baseline: {baseline_card.name} ({baseline_card.members} network(s)), as `run` calls it"
        models = {label: baseline, **models}
    data = None
    batches = [batch]
    if args.data_root:
        from fer_mine.amacnn.ensemble import validation_data
        from fer_mine.amacnn.predict import to_device_images

        data = validation_data(card, args.data_root, log=lambda *_: None)
        faces = card.preprocess.normalize(
            to_device_images(data.val.images[: 8 * args.batch], torch.device("cpu"))
        )
        batches = list(faces.split(args.batch))
    temperature = card.temperature(True)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up: compiles, plans
            class_probabilities(m, batch.contiguous(memory_format=torch.channels_last), True, temperature)
        for _ in range(args.repeats):
            for name, m in models.items():
                xs = [
                    b.contiguous(memory_format=torch.channels_last) if "NCHW" not in name else b
                    for b in batches
                ]
                start = time.perf_counter()
                for x in xs:
                    class_probabilities(m, x, True, temperature)
                times[name].append(time.perf_counter() - start)
    accuracy = {}
    if data is not None:
        from fer_mine.amacnn.predict import evaluate_loaded

        for name, m in models.items():
            accuracy[name] = evaluate_loaded(m, data.val, card.preprocess, card.labels, tta=True)["accuracy"]
    table = Table("variant", "faces/s", "x", "val accuracy (flip)",
                  title=f"{card.name} ({card.members} network(s)), flip TTA, batch {args.batch}, "
                        f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    count = args.batch * len(batches)
    base = count / statistics.median(next(iter(times.values())))
    for name, t in times.items():
        rate = count / statistics.median(t)
        table.add_row(name, f"{rate:.0f}", f"{rate / base:.2f}", f"{accuracy[name]:.2%}" if accuracy else "-")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
