"""Face detection recall and precision (IoU >= 0.5) by face size, on scenes with known boxes.

    python -m benchmarks.detection_quality [--scenes 40] [--size 1600x1200]

Each scene pastes faces of one width bucket (scikit-image's public-domain photos, see
benchmarks/scenes.py) into a cluttered background. Detectors: OpenCV's res10 SSD at several
input sizes (`--detect-size`), and the Haar cascade.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.scenes import compose
from fer_mine.pipeline.detect import DetectorSettings, FaceDetector, iou

WIDTHS = (16, 24, 32, 48, 64, 96, 160, 256)


def evaluate(detector: FaceDetector, scenes) -> tuple[dict, float]:
    """{width: (true faces, found, detections, correct detections)} and seconds per image."""
    stats = {}
    elapsed = 0.0
    for width, scene in scenes:
        start = time.perf_counter()
        found = detector.detect(scene.image)
        elapsed += time.perf_counter() - start
        boxes = [(f.x, f.y, f.w, f.h) for f in found]
        hit = sum(any(iou(t, b) >= 0.5 for b in boxes) for t in scene.boxes)
        correct = sum(any(iou(t, b) >= 0.5 for t in scene.boxes) for b in boxes)
        s = stats.setdefault(width, [0, 0, 0, 0])
        s[0] += len(scene.boxes)
        s[1] += hit
        s[2] += len(boxes)
        s[3] += correct
    return stats, elapsed / len(scenes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="scenes per face width")
    parser.add_argument("--size", default="1600x1200")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    rng = np.random.default_rng(0)
    scenes = []
    for face_width in WIDTHS:
        count = int(np.clip(width * height / (face_width * 2.2) ** 2 / 12, 1, 6))
        scenes += [
            (face_width, compose(rng, width, height, [face_width] * count)) for _ in range(args.scenes // 4)
        ]
    configs = [("ssd", (300,)), ("ssd", (640,)), ("ssd", (1024,)), ("ssd", (1600,)), ("ssd", (640, 1280)),
               ("ssd", (640, 1600)), ("haar", ())]  # fmt: skip
    table = Table("face px", *[f"{n}{'@' + '+'.join(map(str, s)) if s else ''}" for n, s in configs],
                  title=f"recall/precision at IoU >= 0.5, {len(scenes)} scenes of {width}x{height}")  # fmt: skip
    results, speeds = [], []
    for name, size in configs:
        detector = FaceDetector(DetectorSettings(name, detect_sizes=size or (640,), min_face=8))
        stats, seconds = evaluate(detector, scenes)
        results.append(stats)
        speeds.append(seconds)
    for face_width in WIDTHS:
        cells = []
        for stats in results:
            true, hit, dets, correct = stats[face_width]
            cells.append(f"{hit / true:.0%}/{correct / dets:.0%}" if dets else f"{hit / true:.0%}/-")
        table.add_row(str(face_width), *cells)
    table.add_section()
    table.add_row("ms / image", *[f"{s * 1000:.0f}" for s in speeds])
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
