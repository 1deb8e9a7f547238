"""Planning a run before Beam starts: every input and weights file checked, what an earlier run
committed skipped, workers chosen, Beam's options built (refusing ones Beam would drop)."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone

from apache_beam.options.pipeline_options import PipelineOptions

from fer_mine.amacnn.int8 import resolve_precision
from fer_mine.amacnn.model import pick_device
from fer_mine.amacnn.weights import ModelCard, verify_int8_state, verify_weights
from fer_mine.defaults import WORKER_MODES
from fer_mine.errors import FerMineError
from fer_mine.media.detect import FaceDetector
from fer_mine.media.images import find_images, printable
from fer_mine.people.cluster import check_people_extra
from fer_mine.people.embed import embedder_sha256, load_embedder
from fer_mine.pipeline.settings import RunPlan, RunSettings
from fer_mine.records import pieces, store
from fer_mine.records.people import forgotten_keys, people_file, unembedded
from fer_mine.records.schema import TABLES, check_table_file


def recorded_uris(output: str, card: ModelCard, tta: bool, precision: str) -> set[str]:
    """Files already in `images`, `errors` or `videos` for this model (what an incremental run
    skips): a video is one unit, done once any of its rows is committed.

    On the way, in one pass over the committed files, refuse to add to tables of another schema,
    or to faces this model classified with the other TTA setting or precision: the reports
    compare an output's faces with each other, and an incremental run would otherwise mix two
    classifiers under one model."""
    kept = {"tta": tta, "precision": precision}  # what an output holds one of per model (images)
    done: set[str] = set()
    for table, paths in pieces.table_files(output, TABLES).items():
        for path in paths:
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


CALIBRATION = "_calibration"  # the calibration each model's records were made with (not a piece)


def keep_one_calibration(output: str, card: ModelCard, tta: bool, precision: str, recorded: bool) -> None:
    """An output holds one calibration per model: `calibrate` rewrites a card's temperature and
    `quantize` its margin without changing the weights' sha256, and records made with two would
    not compare (confidence, `uncertain`). The output names the one its records were made with
    (`_calibration/<model sha256>-<tta>-<precision>.json`), and a run with another is
    refused, as one with the other TTA setting or precision is. Outputs from before this file
    take the first run's."""
    used = {"temperature": card.temperature(tta), "uncertain_below": card.uncertain_below(tta),
            "refine_margin": card.int8.get("refine_margin") if precision == "int8" else None}  # fmt: skip
    name = f"{card.sha256[:16]}-{'tta' if tta else 'plain'}-{precision}.json"
    path = store.join(output, CALIBRATION, name)
    if recorded and store.is_file(path):
        before = json.loads(store.read_text(path))
        if before != used:
            differs = ", ".join(
                f"{k} {before.get(k)} there, {v} now" for k, v in used.items() if before.get(k) != v
            )
            raise FerMineError(
                f"{output} holds faces that {card.name} classified with another calibration ({differs}); "
                "use --overwrite or another --output, or the model card they were made with"
            )
        return
    store.write_text(json.dumps(used), path)


def recorded_count(settings: RunSettings, plan: RunPlan) -> int:
    """How many of the run's files the output holds now (committed pieces)."""
    done = recorded_uris(settings.output, plan.card, settings.tta, plan.precision)
    return sum(printable(f.uri) in done for f in plan.found)


def _setting(column: str, value) -> str:
    """`with flip TTA`, `in int8`: how a classification setting reads in a refusal."""
    if column == "tta":
        return "with flip TTA" if value else "without flip TTA"
    return f"in {value}"


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
        verify_int8_state(card, weights_path)
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
        for table in (*pieces.PIECE_TABLES, pieces.COMMITS, CALIBRATION):
            store.delete_tree(store.join(output, table))
        # who is who goes with the records; what was forgotten stays forgotten
        store.delete([p for t in ("persons", "names") if store.is_file(p := people_file(output, t))])
    pieces.clean_uncommitted(output)
    done = recorded_uris(output, card, settings.tta, precision)
    keep_one_calibration(output, card, settings.tta, precision, bool(done))
    todo = [f for f in found if printable(f.uri) not in done]
    backfill, forgotten = [], frozenset()
    if settings.people:
        forgotten = forgotten_keys(output)  # faces earlier runs of this model recorded without --people
        missing = unembedded(output, card.sha256)
        backfill = [(f, *missing[uri]) for f in found if (uri := printable(f.uri)) in done and uri in missing]
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    workers, mode, threads = choose_workers(settings, len(todo) + len(backfill), os.cpu_count() or 1)
    return RunPlan(run_id=run_id, card=card, found=found, todo=todo, other_files=other_files, precision=precision,
                   workers=workers, worker_mode=mode, threads=threads, embedder_sha256=embedder_sha,
                   backfill=backfill, forgotten=forgotten)  # fmt: skip


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
