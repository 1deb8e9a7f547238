"""Re-measure the accuracy table of the shipped models on the real datasets.

    python -m benchmarks.accuracy [--data-root ../shared/data] [--tta]

For each shipped model: FER-2013 test (all 7,178, PrivateTest 3,589, PublicTest 3,589) and
FER+ test (majority labels); accuracy, macro P/R/F1 and per-class recall. Skips with a
message when the datasets are absent (a fresh machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fer_mine.amacnn.catalog import shipped_models
from fer_mine.amacnn.datasets import load_split, read_dataset
from fer_mine.amacnn.predict import evaluate_loaded
from fer_mine.amacnn.weights import load_model

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--tta", action="store_true", help="also with horizontal-flip test-time augmentation")
    args = parser.parse_args()
    console = Console(width=200)
    present = [d for d in ("fer2013", "ferplus") if (args.data_root / d).is_dir()]
    if not present:
        console.print(f"skipped: no fer2013 or ferplus under {args.data_root} (pass --data-root)")
        sys.exit(0)
    torch.set_num_threads(torch.get_num_threads())
    labels = None
    table = None
    for name in shipped_models():
        model, card = load_model(name)
        labels = card.labels
        if table is None:
            table = Table("model", "test set", "TTA", "images", "accuracy", "macro P", "macro R", "macro F1",
                          *[f"R {label}" for label in labels], title="shipped models, measured")  # fmt: skip
        for dataset in present:
            data = read_dataset(args.data_root / dataset)
            loaded = load_split(data.splits["test"], card.preprocess, card.labels)
            for tta in (False, True) if args.tta else (False,):
                metrics = evaluate_loaded(model, loaded, card.preprocess, card.labels, tta)
                rows = [(f"{dataset} test", metrics)] + [
                    (f"{dataset} {k}", v) for k, v in metrics.get("subsets", {}).items()
                ]
                for label, m in rows:
                    recall = [f"{m['per_class'][c]['recall']:.2f}" for c in labels]
                    table.add_row(card.name, label, "flip" if tta else "", str(m["images"]), f"{m['accuracy']:.2%}",
                                  f"{m['macro_precision']:.3f}", f"{m['macro_recall']:.3f}", f"{m['macro_f1']:.3f}",
                                  *recall)  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
