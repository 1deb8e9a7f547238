"""`fer-mine run`: the Beam pipeline over photo and video archives (pipeline/run.py)."""

from __future__ import annotations

import os
import signal
import sys
from functools import partial

import click

from fer_mine.commands import options
from fer_mine.commands.output import console, print_plan, print_run_summary, run_progress
from fer_mine.defaults import (
    AUTO_WORKERS,
    COMMIT_FACES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_COMMIT_EVERY,
    DEFAULT_DETECTOR,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_FACE,
    DEFAULT_SIZES,
    DEFAULT_THRESHOLDS,
    DEFAULT_TTA,
    DEFAULT_VIDEO_FPS,
    DEFAULT_WORKER_MODE,
    DETECTORS,
    VIDEO_EXTENSIONS,
    WORKER_MODES,
    describe,
)

# How faces are found and cut: detector, its sizes and threshold, framing
DETECTION = (
    click.option(
        "--detector",
        type=click.Choice(DETECTORS),
        default=DEFAULT_DETECTOR,
        show_default=True,
        help="Face detector: YuNet-n (shipped, OpenCV 4 and 5); OpenCV's res10 SSD or Haar cascade (OpenCV 4 only).",
    ),
    click.option(
        "--detector-model",
        type=click.Path(exists=True, dir_okay=False),
        help="Another YuNet .onnx file for --detector yunet (default: the shipped YuNet-n).",
    ),
    click.option(
        "--detect-size",
        callback=lambda ctx, param, value: _sizes(value) if value else None,
        help="Longer image side(s) the detector sees, comma-separated: one pass each, merged "
        f"(default: {describe(DEFAULT_SIZES)}; see benchmarks/detection_quality.py).",
    ),
    click.option(
        "--min-face",
        type=click.IntRange(1),
        default=DEFAULT_MIN_FACE,
        show_default=True,
        help="Smallest face side kept, in original pixels.",
    ),
    click.option(
        "--threshold",
        type=click.FloatRange(0, 1),
        help=f"Detector score needed (default: {describe(DEFAULT_THRESHOLDS)}).",
    ),
    options.margin,
    options.align,
    options.aligned,
)


# How the work is shared out: batches, local workers
WORKERS = (
    click.option(
        "--batch-size",
        type=click.IntRange(1, 4096),
        default=DEFAULT_BATCH_SIZE,
        show_default=True,
        help="Faces per inference batch.",
    ),
    click.option(
        "--workers",
        metavar="auto|N",
        default=AUTO_WORKERS,
        show_default=True,
        callback=lambda ctx, param, value: _workers(value),
        help="Local workers (DirectRunner), each with its share of the cores; auto: one thread per core "
        "(never more than files to process), in this process for one.",
    ),
    click.option(
        "--worker-mode",
        type=click.Choice(WORKER_MODES),
        default=DEFAULT_WORKER_MODE,
        show_default=True,
        help="With --workers N: threads in this process (no start-up per worker, one model in memory; "
        "measured faster on 2 and 16 cores) or processes (no shared interpreter).",
    ),
)


# What is read: size limit, video frames, images already recorded
READING = (
    click.option(
        "--max-pixels",
        type=click.IntRange(1),
        default=DEFAULT_MAX_PIXELS,
        show_default=True,
        help="Larger images are refused (decompression bombs).",
    ),
    click.option(
        "--video-fps",
        type=click.FloatRange(0, 240),
        default=DEFAULT_VIDEO_FPS,
        show_default=True,
        help=f"Frames sampled per second of video ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)}); 0 leaves "
        "videos aside.",
    ),
    click.option(
        "--overwrite", is_flag=True, help="Redo every image, not only those not yet recorded for this model."
    ),
    click.option(
        "--commit-every",
        type=click.IntRange(1),
        default=DEFAULT_COMMIT_EVERY,
        show_default=True,
        help="Images (photos, video frames) each worker commits at a time, or fewer on crowded photos "
        f"({COMMIT_FACES} faces): a killed run loses at most that much work per worker.",
    ),
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    help="Photo and video folder (repeatable); gs:// etc. where Beam's filesystem extras are installed.",
)
@click.option(
    "--output",
    required=True,
    help="Folder for the faces/, images/, errors/, videos/ Parquet tables; a bucket (s3://, gs://) "
    "with fer-mine[s3] or [gcp].",
)
@options.model
@options.each(*WORKERS)
@options.each(*DETECTION)
@options.each(*READING)
@options.tta(
    DEFAULT_TTA,
    "Average each face's probabilities with its mirror image (+0.4 to +0.9 points on FER-2013 validation).",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any file could not be processed.")
@click.option("--quiet", is_flag=True, help="No progress display or summary.")
@click.option(
    "--runner",
    default="DirectRunner",
    show_default=True,
    help="Beam runner (DataflowRunner, FlinkRunner, PortableRunner, ...).",
)
@click.option("--device", help="torch device for inference (default: cuda when available, else cpu).")
@options.precision
@click.option(
    "--people",
    is_flag=True,
    help="Also tell people apart: a face embedding per face (biometric data: stored apart in embeddings/, "
    "deleted with `fer-mine people forget`), then faces grouped into persons. Off unless given.",
)
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def run(inputs, output, quiet, strict, **chosen) -> None:
    """Find every face in photo archives, classify its emotion, write Parquet.

    Runs an Apache Beam pipeline (on this machine by default, a worker thread per core).
    Arguments after `--` go to Beam unchanged, e.g. `-- --project=P --region=R --temp_location=gs://...`.
    Records are committed while the run goes, a piece at a time: running again over the same
    output processes only the files not yet recorded, so a stopped or killed run continues
    where it stopped. Ctrl-C (or SIGTERM) commits what is finished and exits 130.
    """
    from fer_mine.media.detect import DetectorSettings
    from fer_mine.pipeline.plan import plan_run
    from fer_mine.pipeline.run import run_watched
    from fer_mine.pipeline.settings import RunSettings

    detector = DetectorSettings(name=chosen.pop("detector"), model_path=chosen.pop("detector_model"),
                                detect_sizes=chosen.pop("detect_size"), min_face=chosen.pop("min_face"),
                                threshold=chosen.pop("threshold"))  # fmt: skip
    verbose = (click.get_current_context().obj or {}).get("verbose", False)
    settings = RunSettings(inputs=list(inputs), output=str(output), detector=detector,
                           beam_args=list(chosen.pop("beam_args")), verbose=verbose, **chosen)  # fmt: skip
    plan = plan_run(settings)
    if not quiet:
        print_plan(settings, plan)
    watch = None if quiet or not console.is_terminal else partial(run_progress, plan)
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop: as Ctrl-C
    try:
        result = run_watched(settings, plan, watch)
    except KeyboardInterrupt:
        _stopped(settings, plan)
    if not quiet:
        print_run_summary(result, output)
    if strict and result.get("errors"):
        sys.exit(1)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stopped(settings, plan) -> None:
    """After Ctrl-C or SIGTERM (the finished files committed by then): say how far the run got
    and how to go on, and exit 130 at once (Beam's threads are not waited for). A second Ctrl-C
    while this runs exits at once."""
    from fer_mine.pipeline.plan import recorded_count

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(130))
    done = recorded_count(settings, plan)
    if settings.people:  # embeddings of unfinished pieces: biometric data no reader sees
        from fer_mine.records.people import drop_uncommitted

        drop_uncommitted(settings.output)
    console.print(
        f"stopped: {done} of {len(plan.found)} files are recorded in {settings.output} "
        f"({done - (len(plan.found) - len(plan.todo))} by this run); the same command continues from there"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _workers(value: str) -> int | None:
    """`auto` (None: the run chooses) or a count of local workers."""
    if value == AUTO_WORKERS:
        return None
    try:
        workers = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither {AUTO_WORKERS} nor a number of workers") from None
    if not 1 <= workers <= 256:
        raise click.BadParameter("give auto or a number of workers from 1 to 256")
    return workers


def _sizes(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma list of pixel sizes") from None
    if not sizes or any(not 64 <= s <= 8192 for s in sizes):
        raise click.BadParameter("each size must be between 64 and 8192")
    return sizes


@click.command()
@click.argument("output")
def compact(output: str) -> None:
    """Merge the small committed pieces of an output into Parquet files of a sensible size.

    `run` does it at its end; this is for an output that runs stopped or killed left in many
    pieces. Readers see the old pieces or the merged ones, never both, and never half.
    """
    from fer_mine.records.pieces import clean_uncommitted
    from fer_mine.records.pieces import compact as merge

    if not store_exists(output):
        raise click.BadParameter(f"output folder not found: {output}", param_hint="OUTPUT")
    clean_uncommitted(output)
    done = merge(output)
    console.print(f"{output}: {done['pieces']} pieces merged into {done['after']}")


def store_exists(output: str) -> bool:
    from fer_mine.records import store

    return store.is_remote(output) or os.path.isdir(output)
