"""Per AMACNN preset: parameters, MACs, training and inference images/s, achieved GFLOP/s.

    python -m benchmarks.model_speed [--threads N] [--repeats 5]

Training step = augmentation + forward + hybrid loss + backward + Adam, batch 32 (the paper's),
channels_last; inference = forward + softmax, batch 256. Each figure is the median of
`--repeats` timed runs after a warm-up. FLOPs counted as 2 x MACs (training: 3 x forward).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from fer_mine.amacnn.loss import HybridLoss
from fer_mine.amacnn.model import PRESETS, build_model, count_macs, count_parameters
from fer_mine.transforms.augment import training_augmentation


def _median_rate(step, images: int, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def measure(preset: str, repeats: int, batch: int = 32, infer_batch: int = 256) -> dict:
    model = build_model(preset).to(memory_format=torch.channels_last)
    cfg = model.config
    x = torch.rand(batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    y = torch.randint(0, cfg.num_classes, (batch,))
    augment, loss_fn = training_augmentation(), HybridLoss(torch.ones(cfg.num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)

    def train_step() -> None:
        model.train()
        batch_x = augment(x).clamp(0, 1).sub(0.5).div(0.25).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(batch_x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    xi = torch.rand(infer_batch, cfg.in_channels, cfg.input_size, cfg.input_size).contiguous(
        memory_format=torch.channels_last
    )

    def infer_step() -> None:
        model.eval()
        with torch.inference_mode():
            model(xi).softmax(1)

    macs = count_macs(model)
    train_rate = _median_rate(train_step, batch, repeats)
    infer_rate = _median_rate(infer_step, infer_batch, repeats)
    return {
        "preset": preset,
        "params": count_parameters(model),
        "macs": macs,
        "train": train_rate,
        "infer": infer_rate,
        "train_gflops": 3 * 2 * macs * train_rate / 1e9,
        "infer_gflops": 2 * macs * infer_rate / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", default=",".join(PRESETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = Table("preset", "params", "MMAC/img", "train img/s", "train GFLOP/s", "infer img/s",
                  "infer GFLOP/s", "FER-2013 epoch (28.7k imgs)",
                  title=f"AMACNN on {torch.get_num_threads()} CPU threads, torch {torch.__version__}")  # fmt: skip
    for preset in args.presets.split(","):
        r = measure(preset, args.repeats if preset != "paper" else max(2, args.repeats // 2))
        table.add_row(preset, f"{r['params'] / 1e6:.2f}M", f"{r['macs'] / 1e6:,.0f}", f"{r['train']:.1f}",
                      f"{r['train_gflops']:.1f}", f"{r['infer']:.1f}", f"{r['infer_gflops']:.1f}",
                      f"{28709 / r['train'] / 60:.1f} min")  # fmt: skip
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
