"""`fer-mine evaluate` as a library: a model scored on a labelled folder, cropped faces or whole
photos (the largest face cut as `run` cuts it), with metrics, a confusion matrix and, on request,
the figures recorded in the model card."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from fer_mine.amacnn.calibration import UNCERTAIN_GOAL, fit_temperature, plot_reliability, summary
from fer_mine.amacnn.catalog import CARD_FILE
from fer_mine.amacnn.datasets import LoadedSplit, load_split, read_dataset
from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.metrics import plot_confusion
from fer_mine.amacnn.model import pick_device
from fer_mine.amacnn.predict import evaluate_loaded, split_probabilities, summarize_metrics
from fer_mine.amacnn.weights import ModelCard, load_model, read_card, write_card
from fer_mine.defaults import DEFAULT_ALIGN, DEFAULT_MARGIN
from fer_mine.errors import FerMineError

Status = Callable[[str], AbstractContextManager]


@dataclass
class Evaluation:
    metrics: dict  # classification_metrics, with the run's settings and, with detection, its counts
    card: ModelCard
    precision: str  # what `auto` chose
    loaded: LoadedSplit

    @property
    def card_key(self) -> str:
        """Where the card keeps these figures: `<dataset>/<split>[+detect][+tta]`."""
        m = self.metrics
        return (
            f"{m['dataset']}/{m['split']}"
            + ("+detect" if "detection" in m else "")
            + ("+tta" if m["tta"] else "")
        )


def evaluate_dataset(
    model_path: str | None,
    data_root: Path,
    dataset: str,
    split: str,
    tta: bool = False,
    detect: bool = False,
    precision: str = "auto",
    device: str | None = None,
    status: Status = lambda message: contextlib.nullcontext(),
) -> Evaluation:
    """Score `model_path` on `data_root/dataset`'s `split`; with `detect` the images are whole
    photos, and those without a face count as wrong in `detection.accuracy_all_photos`."""
    device = str(pick_device(device))
    model, card = load_model(model_path, device=device, precision=precision)
    precision = resolve_precision(precision, card, device)
    chosen = read_dataset(data_root / dataset, keep_contempt="contempt" in card.labels).split(split)
    crop = None
    if detect:
        from fer_mine.media.detect import DetectorSettings, largest_face_cropper

        crop = largest_face_cropper(DetectorSettings(), DEFAULT_MARGIN, DEFAULT_ALIGN)
    with status(f"{'detecting faces in' if detect else 'decoding'} {dataset}/{split}"):
        loaded = load_split(chosen, card.preprocess, card.labels, crop)
    if not len(loaded.ids):
        found = "faces" if detect and loaded.no_face else "readable images"
        raise FerMineError(f"no {found} in {dataset}/{split}")
    with status(f"evaluating {card.name} on {len(loaded.ids)} images"):
        metrics = evaluate_loaded(model, loaded, card.preprocess, card.labels, tta, card.temperature(tta))
    # what `run` writes is calibrated: this is its ECE, on the whole split and on each subset
    for part in (metrics, *metrics.get("subsets", {}).values()):
        part["ece"] = part["calibration"]["ece"]
    metrics.update(model=card.name, sha256=card.sha256, dataset=dataset, split=split, tta=tta,
                   inference_precision=precision, skipped=loaded.skipped)  # fmt: skip
    if detect:
        photos = len(loaded.ids) + len(loaded.no_face)
        metrics["detection"] = {
            "photos": photos, "scored": len(loaded.ids), "no_face": len(loaded.no_face),
            "several_faces": loaded.several_faces, "no_face_ids": loaded.no_face,
            # a photo without a face counts as wrong: what `fer-mine run` gets right end to end
            "accuracy_all_photos": metrics["accuracy"] * len(loaded.ids) / photos,
        }  # fmt: skip
    return Evaluation(metrics, card, precision, loaded)


def write_evaluation(evaluation: Evaluation, folder: Path) -> None:
    """metrics.json, confusion.png and reliability.png (calibration before and after) into `folder`."""
    m = evaluation.metrics
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    title = f"{evaluation.card.name} on {m['dataset']}/{m['split']}"
    plot_confusion(m, folder / "confusion.png", title)
    c = m["calibration"]
    plot_reliability(c["bins_uncalibrated"], c["bins"], folder / "reliability.png",
                     f"{title}\nECE {c['ece_uncalibrated']:.3f} uncalibrated, {c['ece']:.3f} at T = {c['temperature']:.2f}")  # fmt: skip


def record_in_card(evaluation: Evaluation, model_path: str | None) -> None:
    """Keep the figures in the model's card: float32's with its metrics, int8's with its calibration."""
    card = evaluation.card
    if evaluation.precision == "int8":
        card.int8.setdefault("metrics", {})[evaluation.card_key] = summarize_metrics(evaluation.metrics)
    else:
        card.metrics[evaluation.card_key] = summarize_metrics(evaluation.metrics)
    write_card(card, read_card(model_path)[1].with_name(CARD_FILE))


def fit_calibration(
    model_path: str | None,
    data_root: Path,
    status: Status = lambda message: contextlib.nullcontext(),
    log: Callable = print,
) -> ModelCard:
    """Fit the model's temperature and uncertain cut-off, with and without flip TTA, on its own
    validation split (rebuilt from the data root as training carved it), and keep them in its
    card. The float32 network's outputs: int8 runs within a fraction of a point of them."""
    from fer_mine.amacnn.ensemble import validation_data, validation_split_of

    model, card = load_model(model_path)
    with status("rebuilding the validation split"):
        data = validation_data(card, data_root, log)
    val = data.val
    fitted = {}
    for tta in (False, True):
        with status(
            f"fitting the temperature {'with' if tta else 'without'} flip TTA on {len(val.ids)} faces"
        ):
            probabilities = split_probabilities(model, val, card.preprocess, tta)
            fitted["tta" if tta else "plain"] = summary(
                probabilities, val.labels, fit_temperature(probabilities, val.labels)
            )
    split = validation_split_of(card)
    card.calibration = {
        "method": "temperature scaling by negative log-likelihood (Guo et al. 2017)",
        "fitted_on": f"validation split of {', '.join(split['datasets'])}: {len(val.ids)} faces "
        f"(val_fraction {split['val_fraction']}, split_seed {split['split_seed']})",
        "uncertain_goal": UNCERTAIN_GOAL,
        **fitted,
    }
    write_card(card, read_card(model_path)[1].with_name(CARD_FILE))
    return card
