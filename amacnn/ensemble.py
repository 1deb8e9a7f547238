"""Combine trained AMACNNs into one ensemble model: one weights file, one card, averaged softmax.

Members must share architecture, labels, preprocessing and the validation split they were
selected on, so that the ensemble's validation figure is as clean as each member's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from fer_mine.amacnn.catalog import CARD_FILE
from fer_mine.amacnn.data import PreparedData, prepare_data
from fer_mine.amacnn.datasets import resolve_datasets
from fer_mine.amacnn.metrics import plot_confusion
from fer_mine.amacnn.model import AMACNN, AMACNNEnsemble, networks_of
from fer_mine.amacnn.predict import evaluate_loaded, summarize_metrics
from fer_mine.amacnn.recipe import TrainOptions
from fer_mine.amacnn.weights import ModelCard, load_model, save_model, write_card
from fer_mine.errors import FerMineError


def validation_split_of(card: ModelCard) -> dict:
    """What fixes a model's validation split. Cards written before `split_seed` existed split
    with `seed`."""
    recipe = card.training.get("recipe", {})
    if not recipe:
        raise FerMineError(
            f"model {card.name} has no training recipe in its card: its validation split is unknown"
        )
    return {
        "datasets": sorted(card.training.get("datasets", [])),
        "val_fraction": recipe.get("val_fraction"),
        "split_seed": recipe.get("split_seed", recipe.get("seed")),
        "keep_contempt": recipe.get("keep_contempt", False),
    }


def check_shared_split(cards: list[ModelCard], same_architecture: bool = False) -> dict:
    """The validation split all these models were chosen on; an error if they differ in it, in
    labels or preprocessing (or, with `same_architecture`, in layers)."""
    first = cards[0]
    split = validation_split_of(first)
    for card in cards[1:]:
        keys = ("labels", "preprocess") + (("config",) if same_architecture else ())
        if any(getattr(card, k) != getattr(first, k) for k in keys):
            raise FerMineError(f"{card.name} and {first.name} differ in {' or '.join(keys)}")
        if validation_split_of(card) != split:
            raise FerMineError(
                f"{card.name} and {first.name} were validated on different splits "
                f"({validation_split_of(card)} vs {split}); train them with the same --split-seed"
            )
    return split


def combine(
    loaded: list[tuple[AMACNN | AMACNNEnsemble, ModelCard]],
    name: str,
    output: Path,
    log: Callable = print,
    half: bool = True,
    soup: bool = False,
) -> tuple[AMACNN | AMACNNEnsemble, ModelCard]:
    """Check that loaded models (`load_model`: sha256-checked) fit together; write their ensemble.
    `soup` writes one network with the members' weights averaged instead (a uniform model soup,
    Wortsman et al. 2022: one forward pass per face; it only works for members fine-tuned from
    the same weights). `half` stores it as float16 (half the file); the returned model is read
    back from the file."""
    if len(loaded) < 2:
        raise FerMineError("an ensemble needs at least two models")
    cards = [card for _, card in loaded]
    first = cards[0]
    split = check_shared_split(cards, same_architecture=True)
    members = [m for model, _ in loaded for m in networks_of(model)]
    combined = _average_weights(members) if soup else _ensemble_of(members)
    card = ModelCard(
        name=name,
        config=first.config,
        preprocess=first.preprocess,
        labels=first.labels,
        preset=first.preset,
        members=1 if soup else len(members),
        training={
            "combined_by": "weights averaged" if soup else "probabilities averaged",
            "datasets": split["datasets"],
            "recipe": {k: v for k, v in split.items() if k != "datasets"},
            "ensemble_of": [
                {"name": c.name, "sha256": c.sha256, "training": t, "metrics": c.metrics}
                for c, t in zip(cards, _lineage_once([c.training for c in cards]), strict=True)
            ],
            "epochs_run": sum(c.training.get("epochs_run", 0) for c in cards),
            "seconds": round(sum(c.training.get("seconds", 0.0) for c in cards), 1),
            "hardware": "; ".join(sorted({c.training.get("hardware", "?") for c in cards})),
        },
    )
    if half:
        card.training["weights_dtype"] = "float16"
    card = save_model(combined, card, output, dtype=torch.float16 if half else None)
    what = f"weight average (soup) of {len(members)}" if soup else f"ensemble of {len(members)}"
    log(f"{what} written to {output} (sha256 {card.sha256[:12]})")
    return load_model(output)  # what the file holds (rounded, if half) is what gets scored


def _lineage_once(trainings: list[dict]) -> list[dict]:
    """Members' training records with a start (--init) that an earlier member already records in
    full cut to its name and sha256: cycles from one start would each repeat its whole lineage
    (six members of one soup made a 1.2 MB card). `model-info` counts each start once anyway."""
    written: set[str] = set()
    out = []
    for training in trainings:
        start = training.get("init_from")
        if start and start.get("sha256") in written:
            training = {**training, "init_from": {"name": start.get("name"), "sha256": start["sha256"]}}
        elif start:
            written.add(start.get("sha256"))
        out.append(training)
    return out


def _ensemble_of(members: list[AMACNN]) -> AMACNNEnsemble:
    """One ensemble holding a copy of each member's layers."""
    ensemble = AMACNNEnsemble(members[0].config, len(members))
    with torch.no_grad():
        for target, member in zip(ensemble.members, members, strict=True):
            target.load_state_dict(member.state_dict())
    return ensemble


def _average_weights(members: list[AMACNN]) -> AMACNN:
    """One network holding the mean of the members' parameters and BatchNorm statistics."""
    soup = AMACNN(members[0].config)
    states = [m.state_dict() for m in members]
    averaged = {
        key: torch.stack([s[key].float() for s in states]).mean(0) if value.is_floating_point() else value
        for key, value in states[0].items()
    }
    soup.load_state_dict(averaged)
    return soup


def score_on(models: dict[str, torch.nn.Module], data: PreparedData, card: ModelCard) -> dict[str, dict]:
    """Metrics of each model, without and with flip TTA, on validation and on every test split."""
    scores: dict[str, dict] = {}
    splits = {"val": data.val, **data.tests}
    for name, model in models.items():
        for tta in (False, True):
            scores[name + (" +flip" if tta else "")] = {
                key: evaluate_loaded(model, split, card.preprocess, card.labels, tta)
                for key, split in splits.items()
            }
    return scores


def validation_data(card: ModelCard, data_root: Path, log: Callable = print) -> PreparedData:
    """The members' shared validation split and the test splits, rebuilt from the data root."""
    split = validation_split_of(card)
    datasets, _ = resolve_datasets(
        data_root, ",".join(split["datasets"]), split["split_seed"], split["keep_contempt"]
    )
    options = TrainOptions(
        val_fraction=split["val_fraction"],
        split_seed=split["split_seed"],
        keep_contempt=split["keep_contempt"],
    )
    return prepare_data(datasets, card.preprocess, options, log)


def record_scores(card: ModelCard, data: PreparedData, scores: dict[str, dict], output: Path) -> None:
    """The combined model's figures (`scores`: its own, and with flip) into its card, beside a
    confusion matrix per test split, and the card written into `output`."""
    plain, flipped = scores["plain"], scores["flip"]
    card.training["images"] = data.counts
    card.training["best_val_accuracy"] = round(plain["val"]["accuracy"], 4)
    card.training["val_accuracy_with_flip"] = round(flipped["val"]["accuracy"], 4)
    for key in data.tests:
        card.metrics[key] = summarize_metrics(plain[key])
        card.metrics[key + "+tta"] = summarize_metrics(flipped[key])
        plot_confusion(plain[key], output / f"confusion-{key.replace('/', '-')}.png", f"{card.name} on {key}")
    write_card(card, output / CARD_FILE)
