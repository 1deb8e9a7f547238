"""The Parquet tables `fer-mine run` writes and `fer-mine report` reads: defined here only.

faces/   one row per detected face
images/  one row per image processed, and per frame sampled from a video (face_count 0 is a
         result, not an error)
errors/  one row per file that could not be processed, or per video damaged part-way
videos/  one row per video read (its duration, fps and frame count, recorded once)
Every photo found is in exactly one of images/ or errors/. A video is in videos/ or errors/,
and in both when it broke off part-way: the frames read before the damage are kept.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fer_mine.errors import FerMineError
from fer_mine.labels import EMOTIONS

# 2: faces and images say whether flip TTA classified them; 3: landmarks, aligned;
# 4: video frames (frame_index, video_time_s) and the videos table; 5: precision (float32, int8);
# 6: calibrated probabilities, uncertain, and the quality columns (face_px, sharpness, yaw, roll)
SCHEMA_VERSION = "6"
# The five face points YuNet gives, in its order (the subject's right and left)
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
LANDMARK_COLUMNS = tuple(f"{point}_{axis}" for point in LANDMARKS for axis in ("x", "y"))
TABLES = ("faces", "images", "errors", "videos")

_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")

# Columns every table shares: which run wrote the row and where the file is.
_COMMON = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),  # relative to its input root, '/'-separated
    pa.field("uri", pa.string(), nullable=False),  # full path or URI as found
    pa.field("folder", pa.string(), nullable=False),  # relative folder ('' = input root)
]

# Where in a video an image row or a face comes from; both null for photos. One image of the
# archive is (uri, frame_index): every query that groups faces by image groups by both.
_FRAME = [
    pa.field("frame_index", pa.int64()),  # 0-based index of the frame in the video's stream
    pa.field("video_time_s", pa.float64()),  # its time from the start of the video
]

FACES = pa.schema(
    [
        *_COMMON,
        pa.field("image_sha256", pa.string(), nullable=False),
        *_FRAME,
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
        # how usable the face is (media/quality.py): the box's shorter side in original pixels,
        # variance of the Laplacian of the model-size crop, head yaw and roll in degrees from the
        # landmarks (null without them)
        pa.field("face_px", pa.int32(), nullable=False),
        pa.field("sharpness", pa.float32(), nullable=False),
        pa.field("yaw_deg", pa.float32()),
        pa.field("roll_deg", pa.float32()),
        pa.field("emotion", pa.string(), nullable=False),  # the most probable label
        # its probability, calibrated by the model card's temperature (amacnn/calibration.py)
        pa.field("confidence", pa.float32(), nullable=False),
        # confidence under the card's cut-off: the faces kept were right 80% of the time on
        # validation; null where the model has no calibration (`fer-mine calibrate`)
        pa.field("uncertain", pa.bool_()),
        # calibrated probability of every label, one column each, in the model's label order
        *[pa.field(f"p_{label}", pa.float32(), nullable=False) for label in EMOTIONS],
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("tta", pa.bool_(), nullable=False),  # probabilities averaged with the mirrored face
        pa.field("precision", pa.string(), nullable=False),  # the classifier's arithmetic: float32 | int8
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "faces", "fer_mine_schema": SCHEMA_VERSION},
)

IMAGES = pa.schema(
    [
        *_COMMON,
        # of the file; of the decoded frame's pixels for a video frame
        pa.field("sha256", pa.string(), nullable=False),
        *_FRAME,
        pa.field("width", pa.int32(), nullable=False),  # after EXIF rotation
        pa.field("height", pa.int32(), nullable=False),
        pa.field("format", pa.string()),  # as decoded (JPEG, PNG, ...; a video's codec for frames)
        pa.field("taken_at", _TS),
        pa.field("face_count", pa.int32(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("tta", pa.bool_(), nullable=False),
        pa.field("precision", pa.string(), nullable=False),
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

VIDEOS = pa.schema(
    [
        *_COMMON,
        pa.field("codec", pa.string()),  # FourCC as the container declares it (h264, mp4v, ...)
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("fps", pa.float64()),  # as declared by the container; null if it declares none
        pa.field("frame_count", pa.int64()),  # as declared; null if unknown
        pa.field("duration_s", pa.float64()),  # frame_count / fps; null if either is unknown
        pa.field("frames_read", pa.int64(), nullable=False),  # frames decoded before the end or damage
        pa.field("frames_sampled", pa.int64(), nullable=False),  # frames that became `images` rows
        pa.field("sample_fps", pa.float64(), nullable=False),  # --video-fps of the run
        pa.field("complete", pa.bool_(), nullable=False),  # false: broke off early (see errors)
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "videos", "fer_mine_schema": SCHEMA_VERSION},
)

# Face embeddings (`run --people`): biometric data, so a table of their own, never in `faces`,
# joined to a face by (uri, frame_index, face_index); `fer-mine people forget` deletes from it
EMBEDDING_SIZE = 128
EMBEDDINGS = pa.schema(
    [
        *_COMMON,
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("frame_index", pa.int64()),
        pa.field("face_index", pa.int32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), EMBEDDING_SIZE), nullable=False),
        pa.field("embedder_sha256", pa.string(), nullable=False),  # the network's weights
        pa.field("model_sha256", pa.string(), nullable=False),  # the emotion model of the run
        pa.field("processed_at", _TS_UTC, nullable=False),
    ],
    metadata={"fer_mine_table": "embeddings", "fer_mine_schema": SCHEMA_VERSION},
)
# Who each embedded face is (`fer-mine people cluster`), and the names users gave people: one
# file each under the output's people/ folder, rewritten whole (small: a row per face, per person)
PEOPLE_FOLDER = "people"
PERSONS = pa.schema(
    [  # a face: the picture's hash, never its path (a changed file must not inherit a person)
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("frame_index", pa.int64()),
        pa.field("face_index", pa.int32(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),  # the run whose faces these are
        pa.field("person_id", pa.string(), nullable=False),  # P1, P2, ...: kept across runs
    ],
    metadata={"fer_mine_table": "persons", "fer_mine_schema": SCHEMA_VERSION},
)
NAMES = pa.schema(
    [pa.field("person_id", pa.string(), nullable=False), pa.field("name", pa.string(), nullable=False)],
    metadata={"fer_mine_table": "names", "fer_mine_schema": SCHEMA_VERSION},
)

# Faces forgotten (`people forget`): keys only, never biometric data, so that no later run embeds
# them again (`people unforget` undoes it). The picture's hash, not its path: the same picture
# copied elsewhere is still forgotten. Kept by `forget --all`, as is the last person id issued
# (schema metadata `last_person`), so that ids are never given twice
FORGOTTEN = pa.schema(
    [
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("frame_index", pa.int64()),
        pa.field("face_index", pa.int32(), nullable=False),
    ],
    metadata={"fer_mine_table": "forgotten", "fer_mine_schema": SCHEMA_VERSION},
)

SCHEMAS: dict[str, pa.Schema] = {"faces": FACES, "images": IMAGES, "errors": ERRORS, "videos": VIDEOS,
                                 "embeddings": EMBEDDINGS, "persons": PERSONS, "names": NAMES,
                                 "forgotten": FORGOTTEN}  # fmt: skip


def check_table_file(path: str | Path, table: str) -> None:
    """Refuse a file that is not this version's `table`: before reports read it, and before a
    run adds files beside it (the reports could not read the mix). A local path or a URI."""
    from fer_mine.records import store

    try:
        metadata = store.read_schema(str(path)).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise FerMineError(f"{path} is not a readable Parquet file: {exc}") from None
    found = (metadata.get(b"fer_mine_table", b"?").decode(), metadata.get(b"fer_mine_schema", b"?").decode())
    if found != (table, SCHEMA_VERSION):
        raise FerMineError(
            f"{path} was written by another fer-mine schema or tool (table {found[0]}, schema "
            f"{found[1]}; this version reads schema {SCHEMA_VERSION}); re-run `fer-mine run --overwrite`"
        )
