"""The steps of `fer-mine run`'s pipeline, and what flows between them.

One kind of element flows from decoding to the commit: a `Unit`, one image of one file (a photo,
or a frame sampled from a video), or the end of a file (a video's own row, an error). Each step
adds to it the rows of the tables it fills, so that all of a file's rows reach the commit
together, in order, in the same worker (pipeline/commit.py), without a Flatten or a
GroupByKey (both of which Beam's local runner turns into a barrier that holds every row until
the whole archive is done).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import apache_beam as beam
import cv2
import numpy as np
import torch
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions

from fer_mine.amacnn.weights import ModelCard
from fer_mine.defaults import DEFAULT_VIDEO_FPS
from fer_mine.logs import quiet_libraries
from fer_mine.media.detect import Face, FaceDetector, crop_face
from fer_mine.media.images import DecodedImage, FoundFile, ImageError, decode, printable, read_bytes
from fer_mine.media.quality import face_quality
from fer_mine.media.video import VideoInfo, sample_frames
from fer_mine.people.embed import embeddable, face_chip
from fer_mine.pipeline.progress import ProgressReporter
from fer_mine.pipeline.settings import RunPlan, RunSettings
from fer_mine.records import store
from fer_mine.records.schema import LANDMARK_COLUMNS
from fer_mine.transforms.preprocess import Preprocess


@dataclass
class Unit:
    """One image of a file on its way to the commit, or the file's end (`last`)."""

    file: FoundFile
    last: bool  # no more units of this file follow: it can be committed
    image: DecodedImage | None = None  # its pixels, until faces are found
    rows: dict[str, list[dict]] = field(default_factory=dict)  # table -> rows, as they will be written
    faces: list[dict] = field(default_factory=list)  # face records waiting for their emotion
    crops: torch.Tensor | None = None  # model-ready crops, one per face
    chips: list[tuple[dict, np.ndarray]] = field(default_factory=list)  # (face key, chip) to embed

    def add(self, table: str, row: dict) -> None:
        self.rows.setdefault(table, []).append(row)

    def images(self) -> int:
        """Images this unit records: what a piece's size counts."""
        return len(self.rows.get("images", ()))


def now() -> datetime:
    return datetime.now(timezone.utc)


def _first_line(exc: Exception) -> str:
    """OpenCV's messages span lines and name its source files; the first line says what failed."""
    text = exc.msg if isinstance(exc, cv2.error) and exc.msg else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def file_columns(file: FoundFile, run_id: str) -> dict:
    """The columns every table shares (schema._COMMON): which run, and where the file is."""
    return {"run_id": run_id, "path": file.path, "uri": printable(file.uri), "folder": file.folder}


class _CountingDoFn(beam.DoFn):
    """A step that reports its counts for the live progress display (pipeline/progress.py)."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        self.run_id, self.model_sha, self.progress_dir = plan.run_id, plan.card.sha256, plan.progress_dir
        self.verbose = settings.verbose
        self.progress: ProgressReporter | None = None

    def setup(self) -> None:
        quiet_libraries(self.verbose)  # a worker process does not inherit the CLI's settings
        self.progress = ProgressReporter(self.progress_dir)

    def finish_bundle(self) -> None:
        self.progress.flush()

    def teardown(self) -> None:
        if self.progress is not None:
            self.progress.flush()

    def error(self, unit: Unit, error: ImageError) -> Unit:
        """The unit, ended by an `errors` row for its file."""
        self.progress.add("errors")
        unit.add("errors", {**file_columns(unit.file, self.run_id), "stage": error.stage, "kind": error.kind,
                            "message": str(error), "model_sha256": self.model_sha, "processed_at": now()})  # fmt: skip
        return unit


class ReadAndDecode(_CountingDoFn):
    """File -> a Unit per photo, or per sampled video frame (streamed) and then one ending the
    video with its `videos` row. Anything unreadable ends the file with an `errors` row; a video
    that breaks off part-way keeps the frames read before the damage."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan, settings)
        self.max_pixels, self.sample_fps = settings.max_pixels, settings.video_fps
        self.beam_args = settings.beam_args

    def setup(self) -> None:
        super().setup()
        # a portable runner's worker starts with no options for FileSystems, and Beam's S3
        # client refuses to start without them: give it the run's (endpoint, region, ...)
        from apache_beam.io.filesystems import FileSystems

        if FileSystems._pipeline_options is None:
            store.filesystems(PipelineOptions(self.beam_args))

    def process(self, file: FoundFile) -> Iterator[Unit]:
        if file.is_video:
            yield from self._video(file)
            return
        self.progress.add("files")
        try:
            yield Unit(file, last=True, image=decode(file, read_bytes(file), self.max_pixels))
        except ImageError as error:
            yield self.error(Unit(file, last=True), error)

    def _video(self, file: FoundFile) -> Iterator[Unit]:
        info = VideoInfo()
        try:
            for frame in sample_frames(file, self.sample_fps, self.max_pixels, info):
                self.progress.add("frames")
                yield Unit(file, last=False, image=frame)
        except ImageError as error:
            self.progress.add("files")
            yield self.error(Unit(file, last=True), error)
            return
        self.progress.add("files")
        end = Unit(file, last=True)
        if info.damage:
            self.error(end, ImageError("decode", "truncated", info.damage))
        end.add("videos", {
            **file_columns(file, self.run_id), "codec": info.codec, "width": info.width, "height": info.height,
            "fps": info.fps, "frame_count": info.frame_count, "duration_s": info.duration_s,
            "frames_read": info.frames_read, "frames_sampled": info.frames_sampled,
            "sample_fps": self.sample_fps, "complete": info.damage is None, "model_sha256": self.model_sha,
            "processed_at": now(),
        })  # fmt: skip
        yield end


class DetectAndCropFaces(_CountingDoFn):
    """Unit with pixels -> its `images` row, a face record and a model-ready crop per face (and a
    chip to embed with --people); the pixels are dropped."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan, settings)
        self.preprocess: Preprocess = plan.card.preprocess
        self.settings = settings
        self.precision, self.threads = plan.precision, plan.threads
        self.forgotten = plan.forgotten
        self.detector: FaceDetector | None = None

    def setup(self) -> None:
        super().setup()
        if self.threads:  # runs in each worker process, where the work is
            cv2.setNumThreads(self.threads)
        if not self.settings.aligned:
            self.detector = FaceDetector(self.settings.detector)

    def process(self, unit: Unit) -> Iterator[Unit]:
        image, unit.image = unit.image, None
        if image is None:  # a file's end, or an error
            yield unit
            return
        height, width = image.pixels.shape[:2]
        try:
            faces = (
                [Face(0, 0, width, height, None)]
                if self.detector is None
                else self.detector.detect(image.pixels)
            )
        except ImageError as exc:  # an image the detector cannot look at, told in our words
            yield self.error(unit, exc)
            return
        except Exception as exc:  # an OpenCV failure on one odd image must not stop the archive
            yield self.error(
                unit, ImageError("detect", "detector_failed", f"the detector failed: {_first_line(exc)}")
            )
            return
        detector = "aligned" if self.detector is None else self.settings.detector.name
        people = self.settings.people and self.detector is not None
        base = file_columns(image.file, self.run_id)
        frame = {"frame_index": image.frame_index, "video_time_s": image.video_time_s}
        self.progress.add("images")
        self.progress.add("faces", len(faces))
        unit.add("images", {
            **base, **frame, "sha256": image.sha256, "width": width, "height": height, "format": image.format,
            "taken_at": image.taken_at, "face_count": len(faces), "detector": detector,
            "model_sha256": self.model_sha, "tta": self.settings.tta, "precision": self.precision,
            "processed_at": now(),
        })  # fmt: skip
        margin = 0.0 if self.detector is None else self.settings.margin
        crops = []
        for index, face in enumerate(faces):
            aligned = self.settings.align and face.landmarks is not None
            crop = self.preprocess.to_pixels(crop_face(image.pixels, face, margin, aligned))
            crops.append(crop)
            points = face.landmarks or (None,) * len(LANDMARK_COLUMNS)
            record = {**base, **frame, "image_sha256": image.sha256, "taken_at": image.taken_at, "face_index": index,
                      "box_x": face.x, "box_y": face.y, "box_w": face.w, "box_h": face.h,
                      "detector": detector, "detector_score": face.score,
                      **dict(zip(LANDMARK_COLUMNS, points, strict=True)), "aligned": aligned,
                      **face_quality(crop, face.w, face.h, face.landmarks)}  # fmt: skip
            unit.faces.append(record)
            frame_key = -1 if image.frame_index is None else image.frame_index
            if (
                people
                and embeddable(face, record["yaw_deg"])
                and (image.sha256, frame_key, index) not in self.forgotten
            ):
                key = {
                    **base,
                    "image_sha256": image.sha256,
                    "frame_index": image.frame_index,
                    "face_index": index,
                }
                unit.chips.append((key, face_chip(image.pixels, face.landmarks)))
        if crops:
            unit.crops = self.preprocess.to_tensor(np.stack(crops))
        yield unit


class ChipRecordedFaces(_CountingDoFn):
    """(file, video sample fps, [recorded face]) -> a Unit of (key, chip) per face: a file an
    earlier run recorded without --people, read again and each face cut from its stored
    landmarks, neither detected nor classified again. A file changed since, or unreadable now,
    is left as it is (a Unit with nothing to embed)."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan, settings)
        self.max_pixels = settings.max_pixels

    def process(self, element: tuple[FoundFile, float | None, list[dict]]) -> Iterator[Unit]:
        file, sample_fps, faces = element
        unit = Unit(file, last=True)
        by_frame: dict[int | None, list[dict]] = {}
        for face in faces:
            by_frame.setdefault(face["frame_index"], []).append(face)
        try:
            if file.is_video:
                frames = sample_frames(file, sample_fps or DEFAULT_VIDEO_FPS, self.max_pixels, VideoInfo())
            else:
                frames = iter([decode(file, read_bytes(file), self.max_pixels)])
            for image in frames:
                for face in by_frame.pop(image.frame_index, []):
                    if face["image_sha256"] != image.sha256:
                        continue  # not the picture that was recorded
                    key = {**file_columns(file, self.run_id), "image_sha256": image.sha256,
                           "frame_index": image.frame_index, "face_index": face["face_index"]}  # fmt: skip
                    unit.chips.append((key, face_chip(image.pixels, face["landmarks"])))
                if not by_frame:
                    break
        except ImageError:
            pass
        yield unit


def add_face_records(result: PredictionResult, card: ModelCard, tta: bool, precision: str) -> Unit:
    """The unit's face records completed with the model's calibrated probabilities."""
    unit, probabilities = result.example, result.inference
    cut = card.uncertain_below(tta)
    for record, p in zip(unit.faces, probabilities if probabilities is not None else (), strict=True):
        best = int(p.argmax())
        unit.add("faces", {**record, "emotion": card.labels[best], "confidence": float(p[best]),
                           "uncertain": None if cut is None else bool(p[best] < cut),
                           **{f"p_{label}": float(q) for label, q in zip(card.labels, p, strict=True)},
                           "model_name": card.name, "model_sha256": card.sha256, "tta": tta,
                           "precision": precision, "processed_at": now()})  # fmt: skip
    unit.faces, unit.crops = [], None
    return unit


def add_embedding_records(result: PredictionResult, embedder_sha: str, model_sha: str) -> Unit:
    unit, vectors = result.example, result.inference
    for (key, _), vector in zip(unit.chips, vectors if vectors is not None else (), strict=True):
        unit.add("embeddings", {**key, "embedding": [float(v) for v in vector], "embedder_sha256": embedder_sha,
                                "model_sha256": model_sha, "processed_at": now()})  # fmt: skip
    unit.chips = []
    return unit
