"""Why a face got its label: AMACNN's spatial attention map over the crop, beside the class
probabilities (the paper's attention figure). An ensemble's map is its members' maps averaged."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from fer_mine.amacnn.model import class_probabilities, networks_of
from fer_mine.amacnn.weights import load_model
from fer_mine.defaults import DEFAULT_TTA
from fer_mine.labels import COLORS


@dataclass
class Explanation:
    face: np.ndarray  # the model's input, uint8 (size, size, channels)
    attention: np.ndarray  # float32 (size, size) in [0, 1], upsampled from the model's grid
    grid: tuple[int, int]  # the attention map's own resolution
    probabilities: np.ndarray  # float32 (classes,), what `fer-mine run` stores for the face


class Explainer:
    """A loaded model that returns attention maps and probabilities for face crops."""

    def __init__(self, model_path: str | None = None, device: str = "cpu", tta: bool = DEFAULT_TTA) -> None:
        self.model, self.card = load_model(model_path, device=device)
        self.device, self.tta = device, tta
        self.members = networks_of(self.model)

    @property
    def note(self) -> str:
        """What the figure shows, in a line: whose map, which probabilities."""
        maps = f"mean of its {len(self.members)} members' maps" if len(self.members) > 1 else "its map"
        calibrated = ", calibrated" if self.card.calibration else ""
        return f"{self.card.name}: {maps}; probabilities {'with' if self.tta else 'without'} flip TTA{calibrated}"

    def explain(self, crop: np.ndarray) -> Explanation:
        """One face crop (gray or BGR uint8, any size; cut as `fer-mine run` cuts it)."""
        preprocess = self.card.preprocess
        face = preprocess.to_pixels(crop)
        batch = preprocess.to_tensor(face[None]).to(self.device)
        with torch.inference_mode():
            maps = torch.stack([m.forward_with_attention(batch)[1][0, 0] for m in self.members]).mean(0)
            probabilities = class_probabilities(self.model, batch, self.tta, self.card.temperature(self.tta))[
                0
            ]
        grid = maps.float().cpu().numpy()
        size = preprocess.size
        attention = np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        return Explanation(face, attention, grid.shape, probabilities.float().cpu().numpy())

    def figure_png(self, explanation: Explanation, title: str) -> bytes:
        """The face, the face under its attention map, and the class probabilities as bars."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        face = explanation.face[..., 0] if explanation.face.shape[2] == 1 else explanation.face
        cmap = "gray" if face.ndim == 2 else None
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.4]})
        axes[0].imshow(face, cmap=cmap, vmin=0, vmax=255)
        axes[0].set_title("face as the model sees it", fontsize=8)
        axes[1].imshow(face, cmap=cmap, vmin=0, vmax=255)
        overlay = axes[1].imshow(explanation.attention, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[1].set_title(
            f"attention ({explanation.grid[0]}x{explanation.grid[1]} map, upsampled)", fontsize=8
        )
        fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.04)
        for ax in axes[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
        labels = list(self.card.labels)
        best = int(explanation.probabilities.argmax())
        axes[2].barh(
            labels[::-1], explanation.probabilities[::-1], color=[COLORS.get(e, "#999") for e in labels[::-1]]
        )
        axes[2].set_xlim(0, 1)
        axes[2].set_xlabel("probability")
        axes[2].set_title(f"{labels[best]} ({explanation.probabilities[best]:.2f})", fontsize=9)
        fig.suptitle(f"{title}\n{self.note}", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        return buffer.getvalue()

    def overlay(self, explanation: Explanation, size: int = 96) -> np.ndarray:
        """A small BGR picture of the face under its attention map (report galleries)."""
        face = cv2.resize(explanation.face, (size, size), interpolation=cv2.INTER_LINEAR)
        face = (
            cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
            if face.ndim == 2
            else cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
        )
        heat = cv2.resize(explanation.attention, (size, size), interpolation=cv2.INTER_LINEAR)
        colored = cv2.applyColorMap(np.uint8(heat * 255), cv2.COLORMAP_JET)
        return cv2.addWeighted(face, 0.6, colored, 0.4, 0)


@dataclass
class ExplainedPhotos:
    written: int = 0  # figures
    photos: int = 0  # photos read
    faceless: int = 0  # photos without a face
    skipped: list[str] = field(default_factory=list)  # "path: why" of photos that could not be read


def explain_photos(
    files: list,
    explainer: Explainer,
    output: Path,
    margin: float,
    align: bool,
    aligned: bool,
    track: Callable[[list], Iterable] = iter,
) -> ExplainedPhotos:
    """One figure per face of each photo in `files` (media.images.FoundFile), into `output`:
    faces found and cut as `fer-mine run` does, or each photo one face with `aligned`."""
    from fer_mine.media.detect import DetectorSettings, Face, FaceDetector, crop_face
    from fer_mine.media.images import ImageError, decode, read_bytes

    detector = None if aligned else FaceDetector(DetectorSettings())
    output.mkdir(parents=True, exist_ok=True)
    done = ExplainedPhotos()
    for file in track(files):
        try:
            pixels = decode(file, read_bytes(file)).pixels
        except ImageError as exc:
            done.skipped.append(f"{file.path}: {exc}")
            continue
        done.photos += 1
        height, width = pixels.shape[:2]
        faces = [Face(0, 0, width, height, None)] if detector is None else detector.detect(pixels)
        done.faceless += not faces
        stem = file.path.rsplit(".", 1)[0].replace("/", "__")
        for index, face in enumerate(faces):
            crop = pixels if detector is None else crop_face(pixels, face, margin, align)
            png = explainer.figure_png(explainer.explain(crop), f"{file.path}, face {index}")
            (output / f"{stem}-face{index}.png").write_bytes(png)
            done.written += 1
    return done
