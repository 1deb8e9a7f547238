"""`fer-mine run`: photo and video archive -> faces, images, errors, videos Parquet tables (Beam).

    FindFiles -> Spread -> ReadAndDecode -> DetectAndCropFaces -> PyTorchRunInference -> ToFaceRecords
        [--people: -> EmbedFaces -> ToEmbeddingRecords] -> CommitPieces
    (--people, faces earlier runs recorded without it)
    FindUnembeddedFaces -> SpreadUnembedded -> ChipRecordedFaces -> EmbedRecordedFaces
        -> ToRecordedEmbeddings -> CommitRecordedPieces

One element flows per image (pipeline/steps.py), gathering its rows of every table on the way;
the last step commits them in pieces while the run goes (pipeline/commit.py, records/pieces.py),
so a killed run keeps all but its last minute of work, and the next run redoes exactly the files
no committed piece holds. At the end the run's small pieces are merged (pieces.compact).

Modules: settings.py (what is asked, what was planned), plan.py (planning), steps.py (the DoFns),
inference.py (RunInference's model handlers), commit.py and pieces.py (committing); this one
builds the pipeline and drives it.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference

from fer_mine.pipeline import commit
from fer_mine.pipeline.inference import AMACNNModelHandler, EmbedderModelHandler
from fer_mine.pipeline.plan import pipeline_options, plan_run
from fer_mine.pipeline.settings import RunPlan, RunSettings
from fer_mine.pipeline.steps import (
    ChipRecordedFaces,
    DetectAndCropFaces,
    ReadAndDecode,
    add_embedding_records,
    add_face_records,
)
from fer_mine.records import pieces
from fer_mine.records.people import assign_people, drop_uncommitted

COUNTED = ("faces", "images", "errors", "videos", "embeddings")


def build_pipeline(p: beam.Pipeline, plan: RunPlan, settings: RunSettings) -> None:
    """The pipeline, top to bottom as the data flows; every step named."""
    card = plan.card
    classifier = AMACNNModelHandler(
        settings.model_path, settings.batch_size, settings.device, settings.tta, plan.threads, plan.precision
    )
    units = (
        p
        | "FindFiles" >> beam.Create(plan.todo)
        | "Spread" >> beam.Reshuffle()
        | "ReadAndDecode" >> beam.ParDo(ReadAndDecode(plan, settings))
        | "DetectAndCropFaces" >> beam.ParDo(DetectAndCropFaces(plan, settings))
        | "PyTorchRunInference" >> RunInference(classifier)
        | "ToFaceRecords" >> beam.Map(add_face_records, card, settings.tta, plan.precision)
    )
    if settings.people:  # biometric data: only when asked, and in a table of its own
        units = (
            units
            | "EmbedFaces"
            >> RunInference(EmbedderModelHandler(settings.batch_size, settings.device, plan.threads))
            | "ToEmbeddingRecords" >> beam.Map(add_embedding_records, plan.embedder_sha256, card.sha256)
        )
    _ = units | "CommitPieces" >> beam.ParDo(
        commit.CommitPieces(settings.output, plan.run_id, settings.commit_every, plan.launcher)
    )
    if settings.people and plan.backfill:  # faces earlier runs recorded without --people
        _ = (
            p
            | "FindUnembeddedFaces" >> beam.Create(plan.backfill)
            | "SpreadUnembedded" >> beam.Reshuffle()
            | "ChipRecordedFaces" >> beam.ParDo(ChipRecordedFaces(plan, settings))
            | "EmbedRecordedFaces"
            >> RunInference(EmbedderModelHandler(settings.batch_size, settings.device, plan.threads))
            | "ToRecordedEmbeddings" >> beam.Map(add_embedding_records, plan.embedder_sha256, card.sha256)
            | "CommitRecordedPieces"
            >> beam.ParDo(
                commit.CommitPieces(settings.output, plan.run_id, settings.commit_every, plan.launcher)
            )
        )


def _committed_rows(result) -> dict[str, int]:
    """Rows this run committed, per table (the commit steps' Beam counters)."""
    counts = dict.fromkeys(COUNTED, 0)
    try:
        found = result.metrics().query(MetricsFilter().with_namespace("fer-mine-commit"))["counters"]
    except (NotImplementedError, KeyError):  # a runner without metrics: the summary says 0
        return counts
    for counter in found:
        counts[counter.key.metric.name] += counter.committed or counter.attempted or 0
    return counts


def run(
    settings: RunSettings, plan: RunPlan | None = None, test_pipeline: beam.Pipeline | None = None
) -> dict:
    """Plan, run the Beam pipeline (it commits as it goes), merge the run's small pieces and,
    with --people, group every embedded face of the output into persons. Returns counts for
    the summary."""
    plan = plan or plan_run(settings)
    commit.reset()
    counts = dict.fromkeys(COUNTED, 0)
    try:
        if plan.todo or plan.backfill:
            p = test_pipeline or beam.Pipeline(options=pipeline_options(settings, plan))
            build_pipeline(p, plan, settings)
            result = p.run()
            result.wait_until_finish()
            counts = _committed_rows(result)
            pieces.compact(settings.output)
    except BaseException:
        if settings.people:  # biometric data no reader sees goes now, not at the next run
            drop_uncommitted(settings.output)
        raise
    finally:
        shutil.rmtree(plan.progress_dir, ignore_errors=True)
    summary = {"found": len(plan.found), "skipped": len(plan.found) - len(plan.todo), **counts}
    if plan.todo or plan.backfill:
        summary["run_id"] = plan.run_id
    if settings.people:  # the new faces joined to the people already known, or new persons
        summary["people"] = assign_people(settings.output)
    else:
        summary.pop("embeddings")
    return summary


def run_watched(
    settings: RunSettings, plan: RunPlan, watch: Callable[[threading.Event], None] | None = None
) -> dict:
    """`run` in a worker thread while `watch(done)` runs in the caller's (a progress display that
    returns once `done` is set); an exception of the pipeline is raised here, in the caller's.
    Ctrl-C (KeyboardInterrupt) in the caller's thread commits what the workers finished and is
    raised again."""
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
    try:
        if watch is None:
            while not done.wait(0.2):  # a timed wait: Ctrl-C reaches this thread
                pass
        else:
            watch(done)
    except KeyboardInterrupt:
        commit.stop_all()
        raise
    if "exception" in result:
        raise result["exception"]
    return result
