"""How usable a face is, measured on what the classifier sees: its size in the photo, the
sharpness of its model-ready crop, and its head pose from the detector's five landmarks.

The columns land in `faces` (records/schema.py); reports combine them into one `quality`
score (reports/archive.py) so that a 14-pixel, blurred, profile face need not count as much
as a sharp frontal portrait.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the gray, model-size crop (Pech-Pacheco et al. 2000): edges
    the network can use. Measured after resizing to the network's input, so a small face blown
    up is as blurred here as the network finds it."""
    gray = crop[..., 0] if crop.ndim == 3 and crop.shape[2] == 1 else crop
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def head_pose(landmarks: tuple[float, ...] | None) -> tuple[float | None, float | None]:
    """(yaw, roll) in degrees from YuNet's five points (right eye, left eye, nose, mouth corners).

    roll: the angle of the line from the subject's right eye to their left eye (0: eyes level,
    positive: clockwise in the image). yaw: how far the nose tip sits from the eyes' midpoint
    along that line, in half eye distances, as an arcsine (0: frontal; +-90: the nose at one
    eye, a profile). A rough estimate, not a 3D fit: enough to tell frontal from turned."""
    if landmarks is None:
        return None, None
    right_eye = np.array(landmarks[0:2], dtype=np.float64)
    left_eye = np.array(landmarks[2:4], dtype=np.float64)
    nose = np.array(landmarks[4:6], dtype=np.float64)
    across = left_eye - right_eye
    distance = float(np.hypot(*across))
    if distance < 1e-6:
        return None, None
    roll = math.degrees(math.atan2(across[1], across[0]))
    offset = float(np.dot(nose - (left_eye + right_eye) / 2, across / distance)) / (distance / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, offset))))
    return yaw, roll


def face_quality(crop: np.ndarray, width: int, height: int, landmarks: tuple[float, ...] | None) -> dict:
    """The quality columns of one face: its crop (model-size uint8), box size and landmarks."""
    yaw, roll = head_pose(landmarks)
    return {
        "face_px": int(min(width, height)),
        "sharpness": sharpness(crop),
        "yaw_deg": yaw,
        "roll_deg": roll,
    }


# The combined `quality` score, 0 to 1, that reports filter on (--min-quality): the weakest of
# four parts, each 1 once the face is as good as it needs to be. Chosen with
# benchmarks/quality_accuracy.py on validation faces (docs/benchmarks.md, Face quality); roll
# is left out: aligned crops undo it, and accuracy did not change with it there.
FULL_SIZE_PX = 48  # the network sees 48x48: a face at least this big loses nothing to size
FULL_SHARPNESS = 400.0  # Laplacian variance of the model-size crop
DETECTOR_FLOOR, DETECTOR_FULL = 0.6, 0.9  # YuNet's score: its default threshold, and sure
QUALITY_PARTS = {
    "size": f"least(face_px / {FULL_SIZE_PX}, 1.0)",
    "sharpness": f"least(sharpness / {FULL_SHARPNESS}, 1.0)",
    # a turned head: 0.5 at 45 degrees of yaw, 1 where the detector gives no landmarks
    "pose": "coalesce(1.0 - abs(yaw_deg) / 90.0, 1.0)",
    # detectors without a score (haar) count as sure
    "detector": f"coalesce(greatest(least((detector_score - {DETECTOR_FLOOR}) / "
    f"{DETECTOR_FULL - DETECTOR_FLOOR:.6g}, 1.0), 0.0), 1.0)",
}
QUALITY_SQL = "least(" + ", ".join(QUALITY_PARTS.values()) + ")"
