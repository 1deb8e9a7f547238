"""Writes a dataset's training pictures, less those identical to one of its test pictures, as
.gpu/<dataset>-train.tar.xz, for scripts/gpu_train.sh on the `device` tool.

    python scripts/gpu_dataset.py DATA_ROOT DATASET
    python scripts/gpu_dataset.py DATA_ROOT ferplus --pictures-from fer2013

`fer-mine train` drops those pictures itself, so a run on this tarball trains on the same
images and carves the same validation split as on the whole dataset; it only has no test split
to score at the end (score back here with `fer-mine evaluate --record`). FER-2013 whole is 42 MB
of tar.xz, and does not fit the tool's 64 MiB beside the repository and the wheels; its training
part does.

With --pictures-from, it writes .gpu/<dataset>-votes.tar.xz instead: DATASET's label.csv rows for
the training pictures that the other dataset's tarball holds too, and pictures.csv, which names
that copy of each. scripts/gpu_train.sh links those copies in under DATASET's names, so
`train --votes-from ferplus` runs beside FER-2013's pictures in 0.5 MiB instead of FER+'s 40.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np

from fer_mine.amacnn.datasets import load_split, pixel_hashes, resolve_datasets
from fer_mine.amacnn.model import PRESETS
from fer_mine.amacnn.train import nearest_pictures
from fer_mine.labels import EMOTIONS
from fer_mine.transforms.preprocess import Preprocess

CONFIG = PRESETS["cpu"].config  # the pixels `train` compares are its preset's input
PREPROCESS = Preprocess(size=CONFIG.input_size, channels=CONFIG.in_channels)


def training_pictures(root: Path, name: str) -> tuple[list[str], np.ndarray]:
    """Paths and pixels of `name`'s training pictures, less those identical to a test picture."""
    (dataset,), _ = resolve_datasets(root, name, 0, False)
    train, test = dataset.splits["train"], dataset.splits["test"]
    test_hashes = set(pixel_hashes(load_split(test, PREPROCESS, EMOTIONS).images))
    loaded = load_split(train, PREPROCESS, EMOTIONS)
    if loaded.skipped or len(loaded.ids) != len(train):  # then images and paths would not line up
        raise SystemExit(f"{len(train) - len(loaded.ids)} training pictures not decoded or not labelled")
    # by position: file names repeat across emotion folders (two do in FER-2013)
    kept = [i for i, h in enumerate(pixel_hashes(loaded.images)) if h not in test_hashes]
    return [train.paths[i] for i in kept], loaded.images[kept]


def votes_beside(root: Path, name: str, pictures_from: str) -> None:
    """`name`'s votes for the pictures of `pictures_from`'s tarball, with a map to those copies."""
    (dataset,), _ = resolve_datasets(root, name, 0, False)
    split = dataset.splits["train"]
    loaded = load_split(split, PREPROCESS, EMOTIONS)  # the pictures `train --votes-from` can use
    paths, images = training_pictures(root, pictures_from)
    copy = nearest_pictures(loaded.images, images)
    (folder,) = {Path(path).parent for path in split.paths}  # FER+: FER2013Train
    rows = {r.split(",")[0]: r for r in (folder / "label.csv").read_text().splitlines(True)}
    found = [(i, c) for i, c in zip(loaded.ids, copy, strict=True) if c >= 0]
    inside = folder.relative_to(root / name)
    target = Path(".gpu") / f"{name}-votes.tar.xz"
    with tarfile.open(target, "w:xz", preset=9) as tar:
        for member, text in (
            (inside / "label.csv", "".join(rows[i] for i, _ in found)),
            ("pictures.csv", "".join(f"{inside / i},{Path(paths[c]).relative_to(root)}\n" for i, c in found)),
        ):
            info = tarfile.TarInfo(str(Path(name) / member))
            info.size = len(data := text.encode())
            tar.addfile(info, io.BytesIO(data))
    print(f"{target}: {name}'s votes for {len(found)} of {len(loaded.ids)} of its training pictures, "
          f"found among {pictures_from}'s {len(paths)}, {target.stat().st_size / 2**20:.2f} MiB")  # fmt: skip


def main() -> None:
    root, name = Path(sys.argv[1]), sys.argv[2]
    if sys.argv[3:4] == ["--pictures-from"]:
        votes_beside(root, name, sys.argv[4])
        return
    keep, _ = training_pictures(root, name)
    (dataset,), _ = resolve_datasets(root, name, 0, False)
    train = dataset.splits["train"]
    target = Path(".gpu") / f"{name}-train.tar.xz"
    target.parent.mkdir(exist_ok=True)
    with tarfile.open(target, "w:xz", preset=9) as tar:
        for path in keep:
            tar.add(path, arcname=str(Path(name) / Path(path).relative_to(root / name)))
        # FER+ lists its pictures in label.csv: keep the rows of the pictures kept, in order
        for folder in sorted({Path(path).parent for path in keep}):
            if (folder / "label.csv").is_file():
                kept = {Path(path).name for path in keep if Path(path).parent == folder}
                rows = [
                    r for r in (folder / "label.csv").read_text().splitlines(True) if r.split(",")[0] in kept
                ]
                info = tarfile.TarInfo(str(Path(name) / folder.relative_to(root / name) / "label.csv"))
                info.size = len(data := "".join(rows).encode())
                tar.addfile(info, io.BytesIO(data))
    print(f"{target}: {len(keep)} of {len(train)} training pictures ({len(train) - len(keep)} are test "
          f"pictures too), {target.stat().st_size / 2**20:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
