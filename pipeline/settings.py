"""What a run is asked to do (`RunSettings`) and what its planning decided (`RunPlan`)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from fer_mine.amacnn.weights import ModelCard
from fer_mine.defaults import (
    DEFAULT_ALIGN,
    DEFAULT_BATCH_SIZE,
    DEFAULT_COMMIT_EVERY,
    DEFAULT_MARGIN,
    DEFAULT_MAX_PIXELS,
    DEFAULT_PRECISION,
    DEFAULT_TTA,
    DEFAULT_VIDEO_FPS,
    DEFAULT_WORKER_MODE,
)
from fer_mine.media.detect import DetectorSettings
from fer_mine.media.images import FoundFile


@dataclass
class RunSettings:
    inputs: list[str]
    output: str
    model_path: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    aligned: bool = False  # every image is one already-cropped face
    # crop framing, chosen with benchmarks/pipeline_accuracy.py (docs/benchmarks.md, Framing)
    margin: float = DEFAULT_MARGIN  # crop margin around the detector box, per side
    align: bool = DEFAULT_ALIGN  # rotate each crop so the eyes are level (needs landmarks)
    tta: bool = DEFAULT_TTA  # average with the mirrored face (see pipeline/inference.py)
    precision: str = DEFAULT_PRECISION  # float32 or int8 (auto: int8 on the CPU where the card keeps it)
    max_pixels: int = DEFAULT_MAX_PIXELS
    video_fps: float = DEFAULT_VIDEO_FPS  # frames sampled per second of video; 0 = videos stay aside
    overwrite: bool = False
    workers: int | None = None  # local workers on the DirectRunner; None: auto (choose_workers)
    worker_mode: str = DEFAULT_WORKER_MODE  # a key of WORKER_MODES
    runner: str = "DirectRunner"
    beam_args: list[str] = field(default_factory=list)
    device: str | None = None
    verbose: bool = False  # library log lines and warnings in the workers too (logs.py)
    people: bool = False  # also a face embedding per face (people/), in a table of its own
    # images (photos and video frames) per committed piece, per worker (pipeline/commit.py)
    commit_every: int = DEFAULT_COMMIT_EVERY


@dataclass
class RunPlan:
    run_id: str
    card: ModelCard
    found: list[FoundFile]
    todo: list[FoundFile]
    other_files: list[str]  # neither photos nor (sampled) videos: left aside, counted in the summary
    precision: str = "float32"  # the run's, resolved from settings.precision (amacnn/int8.py)
    workers: int = 1  # the run's local workers, resolved from settings.workers (choose_workers)
    worker_mode: str = DEFAULT_WORKER_MODE
    # CPU threads for OpenCV and torch in each local worker: the cores shared out, so that N
    # workers do not each start a thread per core; None on other runners (their machines decide)
    threads: int | None = None
    embedder_sha256: str | None = None  # `--people`: the face embedder's weights, checked
    # `--people` over files recorded without it: (file, video sample fps, [face]) to embed
    backfill: list[tuple[FoundFile, float | None, list[dict]]] = field(default_factory=list)
    # `--people`: faces forgotten (`people forget`), never embedded: (image sha256, frame or -1, face)
    forgotten: frozenset = frozenset()
    launcher: int = field(default_factory=os.getpid)  # the process that runs the pipeline
    # a local folder where the steps leave their live counts (pipeline/progress.py)
    progress_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="fer-mine-progress-"))

    @property
    def videos(self) -> int:
        return sum(f.is_video for f in self.todo)
