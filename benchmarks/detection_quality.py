"""Face detection recall and precision (IoU >= 0.5) by face size, on scenes with known boxes.

    python -m benchmarks.detection_quality [--scenes 24] [--size 1600x1200]

Each scene pastes faces of one width bucket (scikit-image's public-domain photos, see
benchmarks/scenes.py) into a cluttered background; "close-up" scenes are one face filling the
photo (256 to 1200 px tall). Detectors: YuNet-n (the default, at several input sizes and score
thresholds), OpenCV's res10 SSD and the Haar cascade (those two on OpenCV 4 only).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.scenes import compose, portrait
from fer_mine.media.detect import DetectorSettings, FaceDetector, iou

WIDTHS = (10, 12, 16, 24, 32, 48, 64, 96, 160, 256, 400)
CLOSE_UPS = (256, 600, 1200)  # photo heights of the close-ups
# (label, settings): the default first, then what it was chosen against
CONFIGS = [
    ("yunet@1280+640 t0.6 (default)", DetectorSettings("yunet", min_face=8)),
    ("yunet t0.5", DetectorSettings("yunet", min_face=8, threshold=0.5)),
    ("yunet t0.7", DetectorSettings("yunet", min_face=8, threshold=0.7)),
    ("yunet@1280+320", DetectorSettings("yunet", detect_sizes=(1280, 320), min_face=8)),
    ("yunet@1600+640", DetectorSettings("yunet", detect_sizes=(1600, 640), min_face=8)),
    ("yunet@1280 only", DetectorSettings("yunet", detect_sizes=(1280,), min_face=8)),
    ("ssd@640+1600 (old default)", DetectorSettings("ssd", min_face=8)),
    ("haar", DetectorSettings("haar", min_face=8)),
]


def evaluate(detector: FaceDetector, scenes) -> dict:
    """{bucket: (true faces, found, detections, correct detections)}."""
    stats = {}
    for bucket, scene in scenes:
        boxes = [(f.x, f.y, f.w, f.h) for f in detector.detect(scene.image)]
        hit = sum(any(iou(t, b) >= 0.5 for b in boxes) for t in scene.boxes)
        correct = sum(any(iou(t, b) >= 0.5 for t in scene.boxes) for b in boxes)
        s = stats.setdefault(bucket, [0, 0, 0, 0])
        s[0] += len(scene.boxes)
        s[1] += hit
        s[2] += len(boxes)
        s[3] += correct
    return stats


def speeds(detectors: list[FaceDetector], images: list[np.ndarray], rounds: int = 3) -> list[float]:
    """Median ms per photo of each detector, the detectors interleaved round by round so that
    a busy moment of the machine does not fall on one of them only."""
    times: list[list[float]] = [[] for _ in detectors]
    for _ in range(rounds):
        for index, detector in enumerate(detectors):
            for image in images:
                start = time.perf_counter()
                detector.detect(image)
                times[index].append(time.perf_counter() - start)
    return [float(np.median(t)) * 1000 for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24, help="scenes per face width")
    parser.add_argument("--size", default="1600x1200")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    rng = np.random.default_rng(0)
    scenes: list[tuple[int | str, object]] = []
    for face_width in WIDTHS:
        count = int(np.clip(width * height / (face_width * 2.2) ** 2 / 12, 1, 6))
        scenes += [
            (face_width, compose(rng, width, height, [face_width] * count)) for _ in range(args.scenes)
        ]
    for tall in CLOSE_UPS:
        scenes += [(f"close-up {tall}", portrait(rng, tall, margin)) for margin in (0.05, 0.1, 0.2, 0.3)]
    usable = []
    for label, settings in CONFIGS:
        try:
            usable.append((label, FaceDetector(settings)))
        except Exception as exc:  # ssd and haar do not exist on OpenCV 5
            print(f"{label}: skipped ({exc})")
    buckets = list(WIDTHS) + [f"close-up {t}" for t in CLOSE_UPS]
    table = Table("face px", *[label for label, _ in usable],
                  title=f"recall/precision at IoU >= 0.5; {args.scenes} scenes of {width}x{height} per width; "
                        f"OpenCV {cv2.__version__}")  # fmt: skip
    results = [evaluate(detector, scenes) for _, detector in usable]
    full_size = [scene.image for bucket, scene in scenes if bucket in (32, 64, 160)][:12]
    ms = speeds([detector for _, detector in usable], full_size)
    for bucket in buckets:
        cells = []
        for stats in results:
            true, hit, dets, correct = stats[bucket]
            cells.append(f"{hit / true:.0%}/{correct / dets:.0%}" if dets else f"{hit / true:.0%}/-")
        table.add_row(str(bucket), *cells)
    table.add_section()
    for name, index in (("all faces", 1), ("all detections", 3)):
        cells = []
        for stats in results:
            total = sum(s[index - 1 if index == 1 else 2] for s in stats.values())
            good = sum(s[index] for s in stats.values())
            cells.append(f"{good / total:.1%}" if total else "-")
        table.add_row(name.replace("all faces", "recall").replace("all detections", "precision"), *cells)
    table.add_row(f"ms / {width}x{height} photo (median)", *[f"{m:.0f}" for m in ms])
    Console(width=250).print(table)


if __name__ == "__main__":
    main()
