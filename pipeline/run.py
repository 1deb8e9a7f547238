"""`fer-mine run`: photo and video archive -> faces, images, errors, videos Parquet tables (Beam).

    FindFiles -> Spread -> ReadAndDecode -> DetectAndCropFaces -> PyTorchRunInference -> ToFaceRecords
                    (photos; video frames)  |              |                                       |
                          |           |    errors        images                                  faces
                        errors      videos       (--people) chips -> EmbedFaces -> ToEmbeddingRecords
                                                                  ^                       |
    (--people, faces earlier runs recorded without it)            |                   embeddings
    FindUnembeddedFaces -> SpreadUnembedded -> ChipRecordedFaces -+

Every table is written by Beam into a hidden staging folder and moved into place only
after the whole pipeline succeeded (images last), so a killed run leaves nothing
half-written visible and the next run redoes exactly what was not committed.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.io.parquetio import WriteToParquet
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.model import pick_device
from fer_mine.amacnn.weights import ModelCard, verify_calibration, verify_weights
from fer_mine.defaults import (
    DEFAULT_ALIGN,
    DEFAULT_MARGIN,
    DEFAULT_PRECISION,
    DEFAULT_TTA,
    DEFAULT_VIDEO_FPS,
    DEFAULT_WORKER_MODE,
    WORKER_MODES,
)
from fer_mine.errors import FerMineError
from fer_mine.logs import quiet_libraries
from fer_mine.media.detect import DetectorSettings, Face, FaceDetector, crop_face
from fer_mine.media.images import (
    DEFAULT_MAX_PIXELS,
    FoundFile,
    ImageError,
    decode,
    find_images,
    printable,
    read_bytes,
)
from fer_mine.media.quality import face_quality
from fer_mine.media.video import VideoInfo, sample_frames
from fer_mine.people.cluster import check_people_extra
from fer_mine.people.embed import embeddable, embedder_sha256, face_chip, load_embedder
from fer_mine.pipeline import store
from fer_mine.pipeline.inference import AMACNNModelHandler, EmbedderModelHandler
from fer_mine.pipeline.people import unembedded
from fer_mine.pipeline.progress import ProgressReporter
from fer_mine.pipeline.schema import LANDMARK_COLUMNS, PEOPLE_FOLDER, SCHEMAS, TABLES, check_table_file
from fer_mine.transforms.preprocess import Preprocess

STAGING = ".staging"


@dataclass
class RunSettings:
    inputs: list[str]
    output: str
    model_path: str | None = None
    batch_size: int = 64
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


@dataclass
class RunPlan:
    run_id: str
    card: ModelCard
    found: list[FoundFile]
    todo: list[FoundFile]
    staging: str  # this run's staging folder, under the output's STAGING
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
    # a local folder where the steps leave their live counts (pipeline/progress.py)
    progress_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="fer-mine-progress-"))

    @property
    def videos(self) -> int:
        return sum(f.is_video for f in self.todo)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _first_line(exc: Exception) -> str:
    """OpenCV's messages span lines and name its source files; the first line says what failed."""
    text = exc.msg if isinstance(exc, cv2.error) and exc.msg else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _file_columns(file: FoundFile, run_id: str) -> dict:
    """The columns every table shares (schema._COMMON): which run, and where the file is."""
    return {"run_id": run_id, "path": file.path, "uri": printable(file.uri), "folder": file.folder}


def _error_row(file: FoundFile, run_id: str, model_sha: str, error: ImageError) -> dict:
    return {**_file_columns(file, run_id), "stage": error.stage, "kind": error.kind, "message": str(error),
            "model_sha256": model_sha, "processed_at": _now()}  # fmt: skip


class _CountingDoFn(beam.DoFn):
    """A step that reports its counts for the live progress display (pipeline/progress.py)."""

    def __init__(self, run_id: str, model_sha: str, progress_dir: str | None, verbose: bool = False) -> None:
        self.run_id, self.model_sha, self.progress_dir = run_id, model_sha, progress_dir
        self.verbose = verbose
        self.progress: ProgressReporter | None = None

    def setup(self) -> None:
        quiet_libraries(self.verbose)  # a worker process does not inherit the CLI's settings
        self.progress = ProgressReporter(self.progress_dir)

    def finish_bundle(self) -> None:
        self.progress.flush()

    def teardown(self) -> None:
        if self.progress is not None:
            self.progress.flush()

    def error(self, file: FoundFile, error: ImageError) -> beam.pvalue.TaggedOutput:
        self.progress.add("errors")
        return beam.pvalue.TaggedOutput("errors", _error_row(file, self.run_id, self.model_sha, error))


class ReadAndDecode(_CountingDoFn):
    """Photo -> DecodedImage; video -> DecodedImage per sampled frame, streamed, then its
    `videos` row. Anything unreadable becomes an `errors` row; a video that breaks off part-way
    is an `errors` row too, and keeps the frames read before the damage.

    One step for both, not a Partition and a Flatten: the FnApiRunner turns a Flatten into a
    buffer, and a video's decoded frames would then pile up in memory (measured: 13 MB per
    frame, 8.3 GB for a 2-minute 720p video at 5 frames/s) instead of flowing one by one into
    detection."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan.run_id, plan.card.sha256, plan.progress_dir, settings.verbose)
        self.max_pixels, self.sample_fps = settings.max_pixels, settings.video_fps
        self.beam_args = settings.beam_args

    def setup(self) -> None:
        super().setup()
        # a portable runner's worker starts with no options for FileSystems, and Beam's S3
        # client refuses to start without them: give it the run's (endpoint, region, ...)
        from apache_beam.io.filesystems import FileSystems

        if FileSystems._pipeline_options is None:
            store.filesystems(PipelineOptions(self.beam_args))

    def process(self, file: FoundFile) -> Iterator:
        if file.is_video:
            yield from self._video(file)
            return
        self.progress.add("files")
        try:
            yield decode(file, read_bytes(file), self.max_pixels)
        except ImageError as error:
            yield self.error(file, error)

    def _video(self, file: FoundFile) -> Iterator:
        info = VideoInfo()
        try:
            for frame in sample_frames(file, self.sample_fps, self.max_pixels, info):
                self.progress.add("frames")
                yield frame
        except ImageError as error:
            self.progress.add("files")
            yield self.error(file, error)
            return
        self.progress.add("files")
        if info.damage:
            yield self.error(file, ImageError("decode", "truncated", info.damage))
        yield beam.pvalue.TaggedOutput("videos", {
            **_file_columns(file, self.run_id), "codec": info.codec, "width": info.width, "height": info.height,
            "fps": info.fps, "frame_count": info.frame_count, "duration_s": info.duration_s,
            "frames_read": info.frames_read, "frames_sampled": info.frames_sampled,
            "sample_fps": self.sample_fps, "complete": info.damage is None, "model_sha256": self.model_sha,
            "processed_at": _now(),
        })  # fmt: skip


class DetectAndCropFaces(_CountingDoFn):
    """DecodedImage -> one `images` row, plus (face record, model-ready crop) per face."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan.run_id, plan.card.sha256, plan.progress_dir, settings.verbose)
        self.preprocess: Preprocess = plan.card.preprocess
        self.settings = settings
        self.precision, self.threads = plan.precision, plan.threads
        self.detector: FaceDetector | None = None

    def setup(self) -> None:
        super().setup()
        if self.threads:  # runs in each worker process, where the work is
            cv2.setNumThreads(self.threads)
        if not self.settings.aligned:
            self.detector = FaceDetector(self.settings.detector)

    def process(self, image) -> Iterator:
        file = image.file
        height, width = image.pixels.shape[:2]
        try:
            if self.detector is None:
                faces = [Face(0, 0, width, height, None)]
            else:
                faces = self.detector.detect(image.pixels)
        except ImageError as exc:  # an image the detector cannot look at, told in our words
            yield self.error(file, exc)
            return
        except Exception as exc:  # an OpenCV failure on one odd image must not stop the archive
            yield self.error(
                file, ImageError("detect", "detector_failed", f"the detector failed: {_first_line(exc)}")
            )
            return
        detector = "aligned" if self.detector is None else self.settings.detector.name
        people = self.settings.people and self.detector is not None
        base = _file_columns(file, self.run_id)
        frame = {"frame_index": image.frame_index, "video_time_s": image.video_time_s}
        self.progress.add("images")
        self.progress.add("faces", len(faces))
        yield beam.pvalue.TaggedOutput("images", {
            **base, **frame, "sha256": image.sha256, "width": width, "height": height, "format": image.format,
            "taken_at": image.taken_at, "face_count": len(faces), "detector": detector,
            "model_sha256": self.model_sha, "tta": self.settings.tta, "precision": self.precision,
            "processed_at": _now(),
        })  # fmt: skip
        margin = 0.0 if self.detector is None else self.settings.margin
        for index, face in enumerate(faces):
            aligned = self.settings.align and face.landmarks is not None
            crop = self.preprocess.to_pixels(crop_face(image.pixels, face, margin, aligned))
            tensor = self.preprocess.to_tensor(crop[None])[0].contiguous()
            points = face.landmarks or (None,) * len(LANDMARK_COLUMNS)
            record = {**base, **frame, "image_sha256": image.sha256, "taken_at": image.taken_at, "face_index": index,
                      "box_x": face.x, "box_y": face.y, "box_w": face.w, "box_h": face.h,
                      "detector": detector, "detector_score": face.score,
                      **dict(zip(LANDMARK_COLUMNS, points, strict=True)), "aligned": aligned,
                      **face_quality(crop, face.w, face.h, face.landmarks)}  # fmt: skip
            yield record, tensor
            if people and embeddable(face, record["yaw_deg"]):
                key = {
                    **base,
                    "image_sha256": image.sha256,
                    "frame_index": image.frame_index,
                    "face_index": index,
                }
                yield beam.pvalue.TaggedOutput("chips", (key, face_chip(image.pixels, face.landmarks)))


class ChipRecordedFaces(_CountingDoFn):
    """(file, video sample fps, [recorded face]) -> (key, chip) per face: a file an earlier run
    recorded without --people, read again and each face cut from its stored landmarks, neither
    detected nor classified again. A file changed since, or unreadable now, is left as it is."""

    def __init__(self, plan: RunPlan, settings: RunSettings) -> None:
        super().__init__(plan.run_id, plan.card.sha256, plan.progress_dir, settings.verbose)
        self.max_pixels = settings.max_pixels

    def process(self, element: tuple[FoundFile, float | None, list[dict]]) -> Iterator:
        file, sample_fps, faces = element
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
                    key = {**_file_columns(file, self.run_id), "image_sha256": image.sha256,
                           "frame_index": image.frame_index, "face_index": face["face_index"]}  # fmt: skip
                    yield key, face_chip(image.pixels, face["landmarks"])
                if not by_frame:
                    return
        except ImageError:
            return


def to_face_record(element, card: ModelCard, tta: bool, precision: str) -> dict:
    record, prediction = element
    probabilities = np.asarray(prediction.inference, dtype=np.float32)
    best = int(probabilities.argmax())
    cut = card.uncertain_below(tta)
    return {**record, "emotion": card.labels[best], "confidence": float(probabilities[best]),
            "uncertain": None if cut is None else bool(probabilities[best] < cut),
            **{f"p_{label}": float(p) for label, p in zip(card.labels, probabilities, strict=True)},
            "model_name": card.name, "model_sha256": card.sha256, "tta": tta, "precision": precision,
            "processed_at": _now()}  # fmt: skip


def to_embedding_record(element, embedder_sha: str, model_sha: str) -> dict:
    key, prediction = element
    return {**key, "embedding": [float(v) for v in prediction.inference], "embedder_sha256": embedder_sha,
            "model_sha256": model_sha, "processed_at": _now()}  # fmt: skip


def build_pipeline(p: beam.Pipeline, plan: RunPlan, settings: RunSettings) -> None:
    """The pipeline, top to bottom as the data flows; every step named."""
    card = plan.card
    decoded = (
        p
        | "FindFiles" >> beam.Create(plan.todo)
        | "Spread" >> beam.Reshuffle()
        | "ReadAndDecode"
        >> beam.ParDo(ReadAndDecode(plan, settings)).with_outputs("errors", "videos", main="images")
    )
    detected = decoded.images | "DetectAndCropFaces" >> beam.ParDo(
        DetectAndCropFaces(plan, settings)
    ).with_outputs("images", "errors", "chips", main="crops")
    handler = KeyedModelHandler(
        AMACNNModelHandler(
            settings.model_path,
            settings.batch_size,
            settings.device,
            settings.tta,
            plan.threads,
            plan.precision,
        )
    )
    faces = (
        detected.crops
        | "PyTorchRunInference" >> RunInference(handler)
        | "ToFaceRecords" >> beam.Map(to_face_record, card, settings.tta, plan.precision)
    )
    errors = (decoded.errors, detected.errors) | "MergeErrors" >> beam.Flatten()
    tables = [("faces", faces), ("images", detected.images), ("errors", errors), ("videos", decoded.videos)]
    if settings.people:  # biometric data: only when asked, and in a table of its own
        chips = detected.chips
        if plan.backfill:  # faces earlier runs recorded without --people
            recorded = (
                p
                | "FindUnembeddedFaces" >> beam.Create(plan.backfill)
                | "SpreadUnembedded" >> beam.Reshuffle()
                | "ChipRecordedFaces" >> beam.ParDo(ChipRecordedFaces(plan, settings))
            )
            chips = (chips, recorded) | "MergeChips" >> beam.Flatten()
        embedder = EmbedderModelHandler(settings.batch_size, settings.device, plan.threads)
        embeddings = (
            chips
            | "EmbedFaces" >> RunInference(KeyedModelHandler(embedder))
            | "ToEmbeddingRecords" >> beam.Map(to_embedding_record, plan.embedder_sha256, card.sha256)
        )
        tables.append(("embeddings", embeddings))
    for table, rows in tables:
        _ = rows | f"Write{table.title()}" >> WriteToParquet(
            store.join(plan.staging, table, plan.run_id), SCHEMAS[table], file_name_suffix=".parquet"
        )


def recorded_uris(output: str, card: ModelCard, tta: bool, precision: str) -> set[str]:
    """Files already in `images`, `errors` or `videos` for this model (what an incremental run
    skips): a video is one unit, done once any of its rows is committed.

    On the way, in one pass over the committed files, refuse to add to tables of another schema,
    or to faces this model classified with the other TTA setting or precision: the reports
    compare an output's faces with each other, and an incremental run would otherwise mix two
    classifiers under one model."""
    kept = {"tta": tta, "precision": precision}  # what an output holds one of per model (images)
    done: set[str] = set()
    for table in TABLES:
        for path in store.list_files(store.join(output, table)):
            check_table_file(path, table)
            if table == "faces":
                continue
            columns = ["uri", "model_sha256"] + (list(kept) if table == "images" else [])
            rows = store.read_table(path, columns)
            mine = [i for i, m in enumerate(rows["model_sha256"].to_pylist()) if m == card.sha256]
            for column, asked in kept.items() if table == "images" else ():
                recorded = {rows[column][i].as_py() for i in mine} - {asked}
                if recorded:
                    raise FerMineError(
                        f"{output} holds faces that {card.name} classified {_setting(column, recorded.pop())}; "
                        f"this run would add faces {_setting(column, asked)}. Keep the setting (--tta/--no-tta, "
                        "--precision), or use --overwrite or another --output"
                    )
            uris = rows["uri"].to_pylist()
            done.update(uris[i] for i in mine)
    return done


def _setting(column: str, value) -> str:
    """`with flip TTA`, `in int8`: how a classification setting reads in a refusal."""
    if column == "tta":
        return "with flip TTA" if value else "without flip TTA"
    return f"in {value}"


def _run_id_of(path: str) -> str:
    """Committed files are named `<run id>-<shard>.parquet`; run ids hold one '-'."""
    return "-".join(posixpath.basename(path).removesuffix(".parquet").split("-")[:2])


def clean_uncommitted(output: str) -> None:
    """Drop what a killed run left: its staging folder, and faces/errors/videos of a run whose
    images never landed (images are moved into place last: they are the commit)."""
    store.delete_tree(store.join(output, STAGING))
    committed = {_run_id_of(p) for p in store.list_files(store.join(output, "images"))}
    for table in ("faces", "errors", "videos", "embeddings"):
        files = store.list_files(store.join(output, table))
        store.delete([path for path in files if _run_id_of(path) not in committed])


def plan_run(settings: RunSettings) -> RunPlan:
    # refuses unknown options before anything is read or written; the object-store clients
    # (endpoint, region, credentials) read the same options
    store.filesystems(pipeline_options(settings))
    for root in [*settings.inputs, settings.output]:
        store.check_scheme(root)
    for root in settings.inputs:
        if not store.is_remote(root) and not os.path.isdir(root):
            raise FerMineError(f"input folder not found: {root}")
    output = settings.output
    if store.is_file(output):
        raise FerMineError(f"output path {output} exists and is not a folder")
    # every weights file the run will load is checked here, so a damaged one is one line, not
    # a traceback from inside a Beam worker, and nothing is staged
    card, weights_path = verify_weights(settings.model_path)
    # decided here, once, for every worker: the tables record it
    precision = resolve_precision(settings.precision, card, str(pick_device(settings.device)))
    if precision == "int8":
        verify_calibration(card, weights_path)
    if not settings.aligned:
        FaceDetector(settings.detector)  # checks the detector's file and OpenCV, before Beam starts
    embedder_sha = None
    if settings.people:
        if settings.aligned:
            raise FerMineError("--people needs the detector's landmarks to align faces: not with --aligned")
        check_people_extra()
        load_embedder()  # checks its weights against their sha256, before Beam starts
        embedder_sha = embedder_sha256()
    other_files: list[str] = []
    found = []
    for root in settings.inputs:
        others_before = len(other_files)
        with store.storage_errors(f"cannot list {root}"):
            files = find_images(root, other_files, settings.video_fps > 0)
        nothing = not files and len(other_files) == others_before
        if store.is_remote(root) and nothing:  # a bucket has no empty folders
            raise FerMineError(f"input not found: nothing under {root} (check the bucket and prefix)")
        found += files
    store.make_folder(output)
    if settings.overwrite:
        for table in (*TABLES, "embeddings", PEOPLE_FOLDER):
            store.delete_tree(store.join(output, table))
    clean_uncommitted(output)
    done = recorded_uris(output, card, settings.tta, precision)
    todo = [f for f in found if printable(f.uri) not in done]
    backfill = []
    if settings.people:  # faces earlier runs of this model recorded without --people
        missing = unembedded(output, card.sha256)
        backfill = [(f, *missing[uri]) for f in found if (uri := printable(f.uri)) in done and uri in missing]
    run_id = _now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    workers, mode, threads = choose_workers(settings, len(todo) + len(backfill), os.cpu_count() or 1)
    return RunPlan(run_id, card, found, todo, store.join(output, STAGING, run_id), other_files, precision,
                   workers, mode, threads, embedder_sha, backfill)  # fmt: skip


def choose_workers(settings: RunSettings, files: int, cores: int) -> tuple[int, str, int | None]:
    """Local workers, their mode and CPU threads each. A given count stands; auto (None) is one
    thread per core, never more than files, in-process for one. Other runners: their own
    workers and threads."""
    if settings.runner != "DirectRunner":
        return settings.workers or 1, settings.worker_mode, None
    if settings.workers is None:
        workers, mode = max(1, min(cores, files)), "threads"
    else:
        workers, mode = settings.workers, settings.worker_mode
    return workers, mode, max(1, cores // workers)


def _unknown_beam_args(args: list[str]) -> list[str]:
    """Arguments no Beam pipeline option takes; Beam itself would drop them with a warning,
    so a typo (`--thread 2`, `--flink-master`) would silently change nothing."""
    # Beam's own parser, built the way PipelineOptions.get_all_options builds it
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    return [a for a in parser.parse_known_args(args)[1] if a.startswith("-")]


def pipeline_options(settings: RunSettings, plan: RunPlan | None = None) -> PipelineOptions:
    """Beam's options for the run (`plan`: its workers); without a plan, those the object-store
    clients read (endpoint, region, credentials)."""
    args = [f"--runner={settings.runner}", *settings.beam_args]
    unknown = _unknown_beam_args(args)
    if unknown:
        raise FerMineError(
            f"unknown option {' '.join(unknown)}: neither fer-mine run nor Beam takes it "
            "(see fer-mine run --help; Beam pipeline options go after --)"
        )
    if settings.runner == "DirectRunner" and plan is not None:
        args.append(f"--direct_num_workers={plan.workers}")
        if not any(a.startswith("--direct_running_mode") for a in args):  # the user's choice stands
            mode = WORKER_MODES[plan.worker_mode] if plan.workers > 1 else "in_memory"
            args.append(f"--direct_running_mode={mode}")
    if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
        # worker processes log every gRPC start and stop at INFO over the progress display
        args.append("--default_sdk_harness_log_level=WARNING")
    return PipelineOptions(args, save_main_session=False)


def commit(plan: RunPlan, output: str) -> dict[str, int]:
    """Move staged Parquet files into place (faces, errors, videos, then images: the commit point)."""
    moved = {}
    for table in ("faces", "errors", "videos", "embeddings", "images"):
        target = store.join(output, table)
        files = store.list_files(store.join(plan.staging, table))
        if table not in TABLES and not files:
            continue  # no embeddings folder at all without --people
        store.make_folder(target)
        moved[table] = sum(store.num_rows(path) for path in files)
        names = [store.join(target, f"{plan.run_id}-{shard:05d}.parquet") for shard in range(len(files))]
        store.move(files, names)
    store.delete_tree(store.join(output, STAGING))
    return moved


def run(
    settings: RunSettings, plan: RunPlan | None = None, test_pipeline: beam.Pipeline | None = None
) -> dict:
    """Plan, run the Beam pipeline, commit. Returns counts for the summary."""
    plan = plan or plan_run(settings)
    try:
        if not plan.todo and not plan.backfill:
            return {"found": len(plan.found), "skipped": len(plan.found), "faces": 0, "images": 0, "errors": 0,
                    "videos": 0}  # fmt: skip
        p = test_pipeline or beam.Pipeline(options=pipeline_options(settings, plan))
        build_pipeline(p, plan, settings)
        p.run().wait_until_finish()
        counts = commit(plan, settings.output)
    finally:
        shutil.rmtree(plan.progress_dir, ignore_errors=True)
    return {
        "found": len(plan.found),
        "skipped": len(plan.found) - len(plan.todo),
        **counts,
        "run_id": plan.run_id,
    }


def run_watched(
    settings: RunSettings, plan: RunPlan, watch: Callable[[threading.Event], None] | None = None
) -> dict:
    """`run` in a worker thread while `watch(done)` runs in the caller's (a progress display that
    returns once `done` is set); an exception of the pipeline is raised here, in the caller's."""
    done = threading.Event()
    result: dict = {}

    def work() -> None:
        try:
            result.update(run(settings, plan))
        except BaseException as exc:  # handed to the calling thread
            result["exception"] = exc
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    if watch is None:
        done.wait()
    else:
        watch(done)
    if "exception" in result:
        raise result["exception"]
    return result
