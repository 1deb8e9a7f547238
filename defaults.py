"""What `fer-mine run` does unless told otherwise: each value measured (docs/benchmarks.md, Detection and
Framing). Kept free of heavy imports so that `--help` can show them without loading OpenCV."""

from __future__ import annotations

DETECTORS = ("yunet", "ssd", "haar")
DEFAULT_DETECTOR = "yunet"
# Per detector: the longer image side(s) it sees (one pass each, merged) and the score it
# needs. Chosen with benchmarks/detection_quality.py on 1600x1200 scenes: YuNet-n at 1280
# finds every face from 24 px (82 ms with both passes) where 1600 costs 118 ms; its 640 pass
# finds the faces too big for the 1280 pass (a face filling the photo is only boxed in parts
# there), with landmarks precise enough to align on, which a 320 pass did not give.
DEFAULT_SIZES: dict[str, tuple[int, ...]] = {"yunet": (1280, 640), "ssd": (640, 1600), "haar": ()}
DEFAULT_THRESHOLDS: dict[str, float] = {"yunet": 0.6, "ssd": 0.5, "haar": 0.0}
DEFAULT_MIN_FACE = 10  # faces smaller than this (px, original image) are dropped
# Faces per inference batch (RunInference; the embedder's too)
DEFAULT_BATCH_SIZE = 64
# A 120 MP photo decodes to ~360 MB; larger ones are refused before decoding (decompression bombs)
DEFAULT_MAX_PIXELS = 120_000_000
# Crop framing, chosen with benchmarks/pipeline_accuracy.py on FER-2013 validation faces.
DEFAULT_MARGIN = -0.05  # per side, as a share of the box size (negative: inside the box)
DEFAULT_ALIGN = True  # rotate the crop so the eyes are level
# Classify each face and its mirror image, probabilities averaged: +0.4 to +0.9 points of
# FER-2013 validation for twice the classifier's work (`fer-mine compare` shows both)
DEFAULT_TTA = True
# Reports leave out faces whose `quality` score (media/quality.py: the weakest of size,
# sharpness, head pose and detector score, each 0 to 1) is under this; chosen with
# benchmarks/quality_accuracy.py. `query` keeps every face unless asked
DEFAULT_MIN_QUALITY = 0.2
# The classifier's arithmetic (amacnn/quantize.py): auto is int8 on the CPU where the model card
# keeps its int8 network (as accurate as float32 on validation; 4-5x the faces/s on 2 cores),
# else float32; CUDA always runs float32
PRECISIONS = ("auto", "float32", "int8")
DEFAULT_PRECISION = "auto"
# Videos: containers OpenCV's FFmpeg backend (in the opencv-python wheels) reads, and how many
# frames per second of video become images (media/video.py)
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
DEFAULT_VIDEO_FPS = 1.0
# How --workers N runs on the DirectRunner: Beam's multi_processing or multi_threading mode.
# Threads by default: no start-up per worker (each process imports torch, OpenCV and Beam again:
# 2.3 s of CPU on 2 cores) and one model in memory; the work itself (decoding, OpenCV, torch)
# releases the GIL. Measured 2026-12-04 on 2 cores: 850 portraits, two threads 0.87x the
# in-process time, two processes 1.24x; on a 16-vCPU machine, 400 photos of 1600x1200: 12 threads
# 26 s, 12 processes 38 s (docs/benchmarks.md, Parallelism)
WORKER_MODES = {"processes": "multi_processing", "threads": "multi_threading"}
DEFAULT_WORKER_MODE = "threads"
# Records are committed while a run goes, a piece at a time (records/pieces.py): each worker
# commits every this many images (photos and video frames), or sooner on crowded photos
# (COMMIT_FACES faces). About 30 s of one worker's photos on 2 cores: a kill costs that much
# work, and 1,000 pieces are merged by `compact` at the end of the run
DEFAULT_COMMIT_EVERY = 100
COMMIT_FACES = 1000
# --workers auto (the default): one thread per core, never more threads than files; one file
# or one core runs in-process. See pipeline/run.py, choose_workers
AUTO_WORKERS = "auto"


def describe(values: dict[str, tuple[int, ...]] | dict[str, float]) -> str:
    """`yunet 1280,640; ssd 640,1600` for --help."""
    return "; ".join(
        f"{name} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for name, v in values.items() if v
    )
