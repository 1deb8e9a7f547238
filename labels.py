"""The emotion label set: its order is the model's output order, everywhere."""

from __future__ import annotations

# FER-2013's seven classes in alphabetical order (the Kaggle folder order).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# FER+ adds contempt; models trained with `--keep-contempt` append it.
CONTEMPT = "contempt"
# One color per emotion, on every chart and figure (reports, attention maps)
COLORS: dict[str, str] = dict(
    zip(
        (*EMOTIONS, CONTEMPT),
        ("#c44e52", "#8c613c", "#8172b3", "#f2b701", "#8c8c8c", "#4c72b0", "#55a868", "#da8bc3"),
        strict=True,
    )
)

# Folder or column names seen in public datasets -> canonical label.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "contempt": "contempt",
}


def canonical_label(name: str) -> str:
    """Map a dataset's folder name to a canonical label, or raise a clear ValueError."""
    key = name.strip().lower()
    if key not in ALIASES:
        accepted = ", ".join(sorted(ALIASES))
        raise ValueError(f"unknown emotion folder {name!r}; accepted names: {accepted}")
    return ALIASES[key]
