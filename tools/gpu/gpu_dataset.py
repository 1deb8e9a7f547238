"""Writes a dataset's training pictures, less those identical to one of its test pictures, as
.gpu/<dataset>-train.tar.xz, for tools/gpu/gpu_train.sh on the `device` tool.

    python tools/gpu/gpu_dataset.py DATA_ROOT DATASET
    python tools/gpu/gpu_dataset.py DATA_ROOT ferplus --pictures-from fer2013

`fer-mine train` drops those pictures itself, so a run on this tarball trains on the same
images and carves the same validation split as on the whole dataset; it only has no test split
to score at the end (score back here with `fer-mine evaluate --record`). FER-2013 whole is 42 MB
of tar.xz, and does not fit the tool's 64 MiB beside the repository and the wheels; its training
part does.

With --pictures-from, it writes .gpu/<dataset>-linked.tar.xz instead: DATASET's training tree
(train and valid splits, label.csv rows of the pictures kept) where each picture that the other
dataset's tarball also holds is a line of pictures.csv naming that copy, not a file.
tools/gpu/gpu_train.sh links the copies in under DATASET's names. FER+ beside FER-2013 so takes 7
MiB instead of 40 (45 with its valid split), which fits beside FER-2013's pictures: `train
--votes-from ferplus` and `train --datasets ferplus [--train-on-valid]` both run on it, on the
same pictures, labels and validation split as here (the linked ones in their JPEG copies, within
1.6 gray levels of FER+'s PNGs).
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np

from fer_mine.amacnn.data import nearest_pictures, same_pictures
from fer_mine.amacnn.datasets import load_split, pixel_hashes, resolve_datasets
from fer_mine.amacnn.model import PRESETS
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


def linked_tree(root: Path, name: str, pictures_from: str) -> None:
    """`name`'s training tree (its train split less test pictures, and its valid split less
    pictures its test split holds), each picture found in `pictures_from`'s tarball named as a
    link to that copy, the others carried as files."""
    (dataset,), _ = resolve_datasets(root, name, 0, False)
    paths, images = training_pictures(root, name)
    copies, copy_images = training_pictures(root, pictures_from)
    test = load_split(dataset.splits["test"], PREPROCESS, EMOTIONS).images
    valid = dataset.splits.get("valid")
    if valid is not None:  # what `train --train-on-valid` can use: not a test picture
        loaded = load_split(valid, PREPROCESS, EMOTIONS)
        keep = np.flatnonzero(~same_pictures(loaded.images, [test]))
        path_of = dict(zip(valid.ids, valid.paths, strict=True))
        paths += [path_of[loaded.ids[i]] for i in keep]
        images = np.concatenate([images, loaded.images[keep]])
    copy = nearest_pictures(images, copy_images)
    target = Path(".gpu") / f"{name}-linked.tar.xz"
    links, rows = [], {}
    with tarfile.open(target, "w:xz", preset=9) as tar:
        for path, c in zip(paths, copy, strict=True):
            own = Path(path).relative_to(root / name)
            rows.setdefault(own.parent, []).append(own.name)
            if c >= 0:
                links.append(f"{own},{Path(copies[c]).relative_to(root)}\n")
            else:
                tar.add(path, arcname=str(Path(name) / own))
        for folder, names in rows.items():  # FER+: each folder's label.csv, rows of the pictures kept
            lines = {
                r.split(",")[0]: r for r in (root / name / folder / "label.csv").read_text().splitlines(True)
            }
            _add_text(tar, Path(name) / folder / "label.csv", "".join(lines[n] for n in names))
        _add_text(tar, Path(name) / "pictures.csv", "".join(links))
    print(f"{target}: {len(paths)} pictures of {name}, {len(links)} of them links to {pictures_from}'s "
          f"copies, {target.stat().st_size / 2**20:.2f} MiB")  # fmt: skip


def _add_text(tar: tarfile.TarFile, name: Path, text: str) -> None:
    info = tarfile.TarInfo(str(name))
    info.size = len(data := text.encode())
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    root, name = Path(sys.argv[1]), sys.argv[2]
    if sys.argv[3:4] == ["--pictures-from"]:
        linked_tree(root, name, sys.argv[4])
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
                _add_text(tar, Path(name) / folder.relative_to(root / name) / "label.csv", "".join(rows))
    print(f"{target}: {len(keep)} of {len(train)} training pictures ({len(train) - len(keep)} are test "
          f"pictures too), {target.stat().st_size / 2**20:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
