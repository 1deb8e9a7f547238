"""One report's answer: its columns and rows, as every output format reads it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    name: str
    title: str
    columns: list[str]
    rows: list[tuple]
    notes: list[str] = field(default_factory=list)
    # the faces the figures rest on: {"rests_on", "recorded", "left_out": {why: count}}; None for
    # a result that counts no faces
    faces: dict | None = None
