"""The Parquet tables `fer-mine run` writes and `fer-mine report` reads: defined here only.

faces/   one row per detected face
images/  one row per image processed (face_count 0 is a result, not an error)
errors/  one row per file that could not be processed
Every file found is in exactly one of images/ or errors/.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fer_mine.errors import FerMineError
from fer_mine.labels import EMOTIONS

SCHEMA_VERSION = "3"  # 2: faces and images say whether flip TTA classified them; 3: landmarks, aligned
# The five face points YuNet gives, in its order (the subject's right and left)
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
LANDMARK_COLUMNS = tuple(f"{point}_{axis}" for point in LANDMARKS for axis in ("x", "y"))
TABLES = ("faces", "images", "errors")

_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")

# Columns every table shares: which run wrote the row and where the file is.
_COMMON = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),  # relative to its input root, '/'-separated
    pa.field("uri", pa.string(), nullable=False),  # full path or URI as found
    pa.field("folder", pa.string(), nullable=False),  # relative folder ('' = input root)
]

FACES = pa.schema(
    [
        *_COMMON,
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("taken_at", _TS),  # EXIF DateTimeOriginal, camera local time; null if absent
        pa.field("face_index", pa.int32(), nullable=False),  # 0.. in detector order
        pa.field("box_x", pa.int32(), nullable=False),  # box in original pixels, after EXIF rotation
        pa.field("box_y", pa.int32(), nullable=False),
        pa.field("box_w", pa.int32(), nullable=False),
        pa.field("box_h", pa.int32(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("detector_score", pa.float32()),  # null where the detector gives none (haar)
        # landmarks in original pixels; null for detectors without them (ssd, haar, aligned input)
        *[pa.field(name, pa.float32()) for name in LANDMARK_COLUMNS],
        pa.field("aligned", pa.bool_(), nullable=False),  # crop rotated so the eyes are level
        pa.field("emotion", pa.string(), nullable=False),  # the most probable label
        pa.field("confidence", pa.float32(), nullable=False),  # its probability
        # probability of every label, one column each, in the model's label order
        *[pa.field(f"p_{label}", pa.float32(), nullable=False) for label in EMOTIONS],
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("tta", pa.bool_(), nullable=False),  # probabilities averaged with the mirrored face
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "faces", "fer_mine_schema": SCHEMA_VERSION},
)

IMAGES = pa.schema(
    [
        *_COMMON,
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),  # after EXIF rotation
        pa.field("height", pa.int32(), nullable=False),
        pa.field("format", pa.string()),  # as decoded (JPEG, PNG, ...)
        pa.field("taken_at", _TS),
        pa.field("face_count", pa.int32(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("tta", pa.bool_(), nullable=False),
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "images", "fer_mine_schema": SCHEMA_VERSION},
)

ERRORS = pa.schema(
    [
        *_COMMON,
        pa.field("stage", pa.string(), nullable=False),  # read | decode | detect | infer
        pa.field("kind", pa.string(), nullable=False),  # e.g. empty_file, not_an_image, too_large
        pa.field("message", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "errors", "fer_mine_schema": SCHEMA_VERSION},
)

SCHEMAS: dict[str, pa.Schema] = {"faces": FACES, "images": IMAGES, "errors": ERRORS}


def check_table_file(path: Path, table: str) -> None:
    """Refuse a file that is not this version's `table`: before reports read it, and before a
    run adds files beside it (the reports could not read the mix)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise FerMineError(f"{path} is not a readable Parquet file: {exc}") from None
    found = (metadata.get(b"fer_mine_table", b"?").decode(), metadata.get(b"fer_mine_schema", b"?").decode())
    if found != (table, SCHEMA_VERSION):
        raise FerMineError(
            f"{path} was written by another fer-mine schema or tool (table {found[0]}, schema "
            f"{found[1]}; this version reads schema {SCHEMA_VERSION}); re-run `fer-mine run --overwrite`"
        )
