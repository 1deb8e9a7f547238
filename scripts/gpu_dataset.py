"""Writes a dataset's training pictures, less those identical to one of its test pictures, as
.gpu/<dataset>-train.tar.xz, for scripts/gpu_train.sh on the `device` tool.

    python scripts/gpu_dataset.py DATA_ROOT DATASET

`fer-mine train` drops those pictures itself, so a run on this tarball trains on the same
images and carves the same validation split as on the whole dataset; it only has no test split
to score at the end (score back here with `fer-mine evaluate --record`). FER-2013 whole is 42 MB
of tar.xz, and does not fit the tool's 64 MiB beside the repository and the wheels; its training
part does.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

from fer_mine.amacnn.datasets import load_split, pixel_hashes, resolve_datasets
from fer_mine.amacnn.model import PRESETS
from fer_mine.labels import EMOTIONS
from fer_mine.transforms.preprocess import Preprocess


def main() -> None:
    root, name = Path(sys.argv[1]), sys.argv[2]
    (dataset,), _ = resolve_datasets(root, name, 0, False)
    config = PRESETS["cpu"].config  # the pixels `train` compares are its preset's input
    preprocess = Preprocess(size=config.input_size, channels=config.in_channels)
    train, test = dataset.splits["train"], dataset.splits["test"]
    test_hashes = set(pixel_hashes(load_split(test, preprocess, EMOTIONS).images))
    loaded = load_split(train, preprocess, EMOTIONS)
    if loaded.skipped:  # then images and paths would no longer line up
        raise SystemExit(f"{len(loaded.skipped)} unreadable training pictures: {loaded.skipped[:3]}")
    # by position: file names repeat across emotion folders (two do in FER-2013)
    hashes = pixel_hashes(loaded.images)
    keep = [path for path, h in zip(train.paths, hashes, strict=True) if h not in test_hashes]
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
