"""Face embeddings for telling people apart: a face's chip, aligned from YuNet's five landmarks,
through dlib's face-recognition ResNet (`people/network.py`). Two faces of one person lie
closer than `SAME_PERSON` (Euclidean), as dlib states for its network.

Opt-in (`fer-mine run --people`): an embedding is biometric data, stored apart from the emotion
records and easy to delete.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file

from fer_mine.errors import FerMineError
from fer_mine.media.hashing import sha256_of
from fer_mine.people.network import CHIP, FaceEmbedder

# dlib's own verification threshold for this network (LFW: 99.38% as its author reports)
SAME_PERSON = 0.6
# Which faces get an embedding: smaller or more turned ones are not told apart reliably
# (benchmarks/people_quality: docs/benchmarks.md, People)
EMBED_MIN_FACE_PX = 24
EMBED_MAX_YAW = 60.0
# dlib's chip framing (compute_face_descriptor: get_face_chip_details(shape, 150, 0.25)): the
# mean face is grown by this share on each side
CHIP_PADDING = 0.25
# Where YuNet's five points (right eye, left eye, nose tip, right and left mouth corner: the
# subject's sides) sit on dlib's mean face, in its 0..1 frame: the eye centres are the means of
# dlib's six points around each eye, the nose tip and mouth corners are its points 30, 48, 54
MEAN_FACE = np.array(
    [
        [0.225490, 0.215990],
        [0.754760, 0.215990],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ]
)
TEMPLATE = (CHIP_PADDING + MEAN_FACE) / (2 * CHIP_PADDING + 1) * CHIP


def embeddable(face, yaw_deg: float | None) -> bool:
    """Whether a detected face (media.detect.Face) is big and frontal enough for an embedding."""
    if face.landmarks is None or min(face.w, face.h) < EMBED_MIN_FACE_PX:
        return False
    return yaw_deg is None or abs(yaw_deg) <= EMBED_MAX_YAW


def shipped_embedder() -> Path:
    return Path(str(resources.files("fer_mine.people") / "weights" / "dlib-resnet"))


def similarity(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking `points` nearest to
    `target` in least squares (Umeyama 1991), as dlib's find_similarity_transform fits it."""
    mean_p, mean_t = points.mean(axis=0), target.mean(axis=0)
    p, t = points - mean_p, target - mean_t
    u, s, vt = np.linalg.svd(t.T @ p / len(points))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / p.var(axis=0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_t - scale * rotation @ mean_p
    return matrix


def face_chip(image: np.ndarray, landmarks: tuple[float, ...]) -> np.ndarray:
    """The 150x150 RGB chip dlib's network expects, from a BGR (or gray) photo and YuNet's points."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix = similarity(points, TEMPLATE)
    chip = cv2.warpAffine(
        image, matrix, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if chip.ndim == 2:
        return cv2.cvtColor(chip, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(chip, cv2.COLOR_BGR2RGB)


def embedder_sha256(folder: str | None = None) -> str:
    """The sha256 the embedder's model.json names for its weights (load_embedder checks them)."""
    path = Path(folder) if folder else shipped_embedder()
    return json.loads((path / "model.json").read_text())["sha256"]


@cache
def load_embedder(folder: str | None = None, device: str = "cpu") -> FaceEmbedder:
    """The network with its float16 weights, checked against their sha256, as float32."""
    weights = (Path(folder) if folder else shipped_embedder()) / "model.safetensors"
    if not weights.is_file() or sha256_of(weights) != embedder_sha256(folder):
        raise FerMineError(f"{weights}: missing, or not the file its model.json names (sha256 differs)")
    model = FaceEmbedder()
    model.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
    return model.eval().to(device)


def embed(chips: np.ndarray, model: FaceEmbedder, batch_size: int = 64) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32 embeddings."""
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(chips), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch_size])).to(device)
            out.append(model(batch.permute(0, 3, 1, 2)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)
