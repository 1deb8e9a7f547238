"""Synthetic photo scenes with known face boxes, from scikit-image's public-domain photos.

Used by the tests, the benchmarks and `samples/`: faces of the astronaut (Eileen Collins,
NASA) and the cameraman pasted at known places and sizes onto cluttered backgrounds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# face boxes (x, y, w, h) in the original scikit-image photos, found with the SSD detector
_SOURCES = {"astronaut": (180, 57, 91, 118), "camera": (197, 113, 57, 84)}
_HEAD_MARGIN = 0.45  # how much of the surroundings (hair, neck) travels with a pasted face


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # BGR
    boxes: list[tuple[int, int, int, int]]  # true face boxes (x, y, w, h)


def _source_heads() -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """(head patch BGR, face box inside the patch) for each source photo. With $FER_MINE_SCENE_HEADS
    naming an .npz file, read from it if it exists, else written to it: a machine without
    scikit-image (a lent GPU machine) builds the same scenes from the file."""
    cache = os.environ.get("FER_MINE_SCENE_HEADS")
    if cache and Path(cache).is_file():
        stored = np.load(cache)
        return [(stored[f"patch{i}"], tuple(stored[f"box{i}"].tolist())) for i in range(len(_SOURCES))]
    import skimage.data

    heads = []
    for name, (x, y, w, h) in _SOURCES.items():
        photo = getattr(skimage.data, name)()
        photo = cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR) if photo.ndim == 2 else photo[:, :, ::-1]
        mx, my = int(w * _HEAD_MARGIN), int(h * _HEAD_MARGIN)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(photo.shape[1], x + w + mx), min(photo.shape[0], y + h + my)
        heads.append((np.ascontiguousarray(photo[y0:y1, x0:x1]), (x - x0, y - y0, w, h)))
    if cache:
        arrays = {f"patch{i}": patch for i, (patch, _) in enumerate(heads)}
        np.savez_compressed(cache, **arrays, **{f"box{i}": np.array(box) for i, (_, box) in enumerate(heads)})
    return heads


_HEADS: list | None = None


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    corners = rng.integers(30, 220, size=(2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(3, 9))):  # clutter that is not a face
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, width // 3)), y0 + int(rng.integers(20, height // 3))
        cv2.rectangle(image, (x0, y0), (x1, y1), rng.integers(0, 255, 3).tolist(), -1)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def compose(rng: np.random.Generator, width: int, height: int, face_widths: list[int]) -> Scene:
    """A scene with one face per entry of `face_widths` (pixels), placed without overlap."""
    global _HEADS
    _HEADS = _HEADS or _source_heads()
    image = _background(rng, width, height)
    boxes: list[tuple[int, int, int, int]] = []
    taken: list[tuple[int, int, int, int]] = []
    for face_width in face_widths:
        patch, (fx, fy, fw, fh) = _HEADS[int(rng.integers(len(_HEADS)))]
        scale = face_width / fw
        patch = cv2.resize(
            patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
            fx = patch.shape[1] / scale - fx - fw
        ph, pw = patch.shape[:2]
        if pw >= width or ph >= height:
            continue
        for _ in range(50):  # find a free spot
            px, py = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
            if all(px + pw <= x or x + w <= px or py + ph <= y or y + h <= py for x, y, w, h in taken):
                break
        else:
            continue
        gain = rng.uniform(0.75, 1.2)
        image[py : py + ph, px : px + pw] = np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        taken.append((px, py, pw, ph))
        boxes.append((int(px + fx * scale), int(py + fy * scale), int(fw * scale), int(fh * scale)))
    return Scene(image, boxes)


def portrait(rng: np.random.Generator, height: int, margin: float = 0.1, source: str | None = None) -> Scene:
    """A close-up: one face filling most of the photo (`margin` of its size around it), of a
    random source photo or the named one ("astronaut" faces the camera; "camera" holds one)."""
    global _HEADS
    _HEADS = _HEADS or _source_heads()
    index = list(_SOURCES).index(source) if source else int(rng.integers(len(_HEADS)))
    patch, (fx, fy, fw, fh) = _HEADS[index]
    x0, y0 = max(0, int(fx - fw * margin)), max(0, int(fy - fh * margin))
    x1, y1 = (
        min(patch.shape[1], int(fx + fw * (1 + margin))),
        min(patch.shape[0], int(fy + fh * (1 + margin))),
    )
    scale = height / (y1 - y0)
    image = cv2.resize(patch[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    box = (int((fx - x0) * scale), int((fy - y0) * scale), int(fw * scale), int(fh * scale))
    return Scene(np.ascontiguousarray(image), [box])


def save_jpeg(image: np.ndarray, path: Path, taken_at: datetime | None = None, quality: int = 88) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image[:, :, ::-1])
    exif = Image.Exif()
    if taken_at is not None:
        exif.get_ifd(0x8769)[36867] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    pil.save(path, "JPEG", quality=quality, exif=exif.tobytes())


def write_archive(
    folder: Path,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (1024, 768),
    crowded: bool = False,
) -> dict[str, list]:
    """`count` JPEG photos in album folders with EXIF times; returns {relative path: boxes}.
    Photos hold 0-5 faces of 40-200 px, or with `crowded` 20-40 faces of 20-120 px, small ones
    more often (log-uniform widths, as in group photos and crowds; as many as find room)."""
    rng = np.random.default_rng(seed)
    truth = {}
    start = datetime(2024, 1, 6, 9, 0)
    for i in range(count):
        album = f"album-{i % 4 + 1}"
        if crowded:
            n_faces = int(rng.integers(20, 41))
            widths = [int(np.exp(rng.uniform(np.log(20), np.log(120)))) for _ in range(n_faces)]
        else:
            n_faces = int(rng.choice([0, 1, 1, 2, 3, 5]))
            widths = [int(rng.integers(40, 200)) for _ in range(n_faces)]
        scene = compose(rng, size[0], size[1], widths)
        taken = start + timedelta(days=int(i // 3) * 9, hours=int(rng.integers(0, 12)), minutes=i)
        rel = f"{album}/photo-{i:05d}.jpg"
        save_jpeg(scene.image, folder / rel, taken)
        truth[rel] = scene.boxes
    return truth
