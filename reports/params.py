"""The parameters the report queries take, bound as DuckDB variables by `reports/archive.py`.
Kept free of heavy imports so that `--help` shows the defaults."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fer_mine.defaults import DEFAULT_MIN_QUALITY


@dataclass
class ReportParams:
    min_confidence: float = 0.0  # faces below this (calibrated) top-label probability are left out
    min_quality: float = DEFAULT_MIN_QUALITY  # faces below this `quality` score are left out
    certain_only: bool = False  # leave out the faces flagged `uncertain`
    since: dt.datetime | None = None  # EXIF time window (photos without a time are then left out)
    until: dt.datetime | None = None
    model_sha256: str | None = None  # default: the model of the latest run
    min_images: int = 2  # combinations: smallest itemset count shown
    limit: int = 50  # review: rows shown
    per_emotion: int = 6  # gallery: faces shown per emotion
    per_person: int = 6  # person_gallery: faces shown per person
    bucket_s: float = 10.0  # video_timeline: seconds of video per row
