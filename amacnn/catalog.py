"""Where the shipped models live, readable without importing torch (the CLI's --help uses it)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from fer_mine.errors import FerMineError

CARD_FILE = "model.json"
# Models shipped as package data, one folder each under amacnn/weights/; `--model NAME`
# picks one, and this one runs when no --model is given.
DEFAULT_MODEL_NAME = "amacnn-fer2013"


def shipped_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path:
    return Path(str(resources.files("fer_mine.amacnn") / "weights" / name))


def shipped_models() -> list[str]:
    root = Path(str(resources.files("fer_mine.amacnn") / "weights"))
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def resolve_model(model: str | Path | None) -> Path:
    """A model folder, card or weights file, or the name of a shipped model (None = default)."""
    if model is None:
        return shipped_model_dir()
    path = Path(model)
    if path.exists():
        return path
    if str(model) in shipped_models():
        return shipped_model_dir(str(model))
    raise FerMineError(
        f"model {model} not found: give a model folder or one of {', '.join(shipped_models())}"
    )


def default_card_json() -> dict | None:
    """The default model's card as plain JSON, or None if it is missing."""
    path = shipped_model_dir() / CARD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def training_summary(training: dict) -> str:
    """Epochs and hardware of a card's training, the runs it started from (--init) and its
    members included: what it took to make the model, not only its last step. Members that
    started from the same run count that run once."""
    seen: set[str] = set()

    def walk(t: dict) -> tuple[int, set[str]]:
        parts = [m["training"] for m in t.get("ensemble_of", [])] or [t]
        epochs, hardware = 0, set()
        for part in parts:
            epochs += part.get("epochs_run", 0)
            hardware.update(h for h in part.get("hardware", "").split("; ") if h)
            start = part.get("init_from")
            if start and start.get("sha256") not in seen:
                seen.add(start.get("sha256"))
                more, kinds = walk(start.get("training", {}))
                epochs, hardware = epochs + more, hardware | kinds
        return epochs, hardware

    epochs, hardware = walk(training)
    return f"{epochs} epochs in all, on {', '.join(sorted(hardware)) or '?'}"
