"""A run commits its records in pieces as it goes: a kill or Ctrl-C costs the pieces in flight,
never the run, and the rerun ends with exactly the uninterrupted run's records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from test_pipeline import same_records
from test_video import SIZE, write_video

from benchmarks.scenes import compose, write_archive
from fer_mine.cli import main
from fer_mine.records import pieces, store
from fer_mine.records.schema import SCHEMAS

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)


def committed(out: Path, table: str) -> list[dict]:
    """A table's rows as every reader sees them: committed pieces only."""
    files = pieces.table_files(str(out), (table,))[table]
    return pa.concat_tables([store.read_table(f) for f in files]).to_pylist() if files else []


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Eight photos and a 30 s video with two faces (30 sampled frames)."""
    folder = tmp_path_factory.mktemp("photos")
    write_archive(folder / "photos", 8, seed=11)
    rng = np.random.default_rng(2)
    (folder / "clips").mkdir()
    write_video(folder / "clips" / "talk.mp4", [compose(rng, *SIZE, [120, 100]).image], 30)
    return folder


@pytest.fixture(scope="module")
def whole(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    result = CliRunner().invoke(main, ["run", "--quiet", "--input", str(archive), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def start(archive: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "fer_mine.cli", "run", "--quiet", "--input", str(archive), "--output",
               str(out), "--commit-every", "2", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_pieces(out: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while len(list((out / pieces.COMMITS).glob("*.json"))) < count and proc.poll() is None:
        assert time.time() < deadline, "no piece committed in 2 minutes"
        time.sleep(0.02)


def assert_whole_files(out: Path) -> None:
    """What a reader sees holds whole files: each image with all its faces, each video with all
    its frames."""
    faces = committed(out, "faces")
    for image in committed(out, "images"):
        mine = [f for f in faces if (f["uri"], f["frame_index"]) == (image["uri"], image["frame_index"])]
        assert len(mine) == image["face_count"]
    frames = [i["uri"] for i in committed(out, "images")]
    for video in committed(out, "videos"):
        assert frames.count(video["uri"]) == video["frames_sampled"]


def assert_same_as_whole(out: Path, whole: Path) -> None:
    for table in ("faces", "images", "videos"):
        same_records(committed(out, table), committed(whole, table))
    keys = [(f["uri"], f["frame_index"], f["face_index"]) for f in committed(out, "faces")]
    assert len(keys) == len(set(keys)), "a face recorded twice"


@pytest.mark.parametrize(
    ("mode", "after"),
    [("threads", 1), ("processes", 2)],
    ids=["threads-after-1-piece", "processes-after-2-pieces"],
)
def test_a_kill_keeps_the_committed_pieces_and_the_rerun_completes_the_records(
    archive, whole, tmp_path, mode, after
):
    out = tmp_path / "killed"
    proc = start(archive, out, "--workers", "2", "--worker-mode", mode)
    wait_for_pieces(out, after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {i["uri"] for i in committed(out, "images")} | {e["uri"] for e in committed(out, "errors")}
    assert 0 < len(kept) < 9, "the kill should land between the first piece and the end"
    assert_whole_files(out)
    rerun = CliRunner().invoke(main, ["run", "--input", str(archive), "--output", str(out)])
    assert rerun.exit_code == 0, rerun.output
    assert f"{len(kept)} already recorded" in " ".join(rerun.output.split())
    assert_same_as_whole(out, whole)
    # nothing but committed pieces is left behind
    names = {p.stem for table in pieces.PIECE_TABLES for p in (out / table).glob("*.parquet")}
    assert names <= pieces.visible_pieces(str(out))


def test_a_piece_never_holds_part_of_a_video(tmp_path):
    """Frames of a video in progress wait for its end: a kill before it loses the video whole."""
    from fer_mine.media.images import FoundFile
    from fer_mine.pipeline.commit import CommitPieces
    from fer_mine.pipeline.steps import Unit

    def unit(name: str, last: bool, frame: int | None = None) -> Unit:
        file = FoundFile(uri=f"/x/{name}", root="/x", path=name)
        done = Unit(file, last=last)
        if not last or frame is None:
            done.add("images", {"uri": f"/x/{name}", "frame_index": frame})
        return done

    step = CommitPieces(str(tmp_path), "20261207T000000Z-abcdef", commit_every=2, launcher=os.getpid())
    step.setup()
    written = []
    step._commit = lambda: (written.append(sorted(step.done)), step.done.clear())
    for item in (unit("a.jpg", True), unit("v.mp4", False, 0), unit("v.mp4", False, 1), unit("b.jpg", True)):
        step.process(item)
    assert written == [["/x/a.jpg", "/x/b.jpg"]]  # four images: a piece, without the video's frames
    step.process(unit("v.mp4", True, 2))
    step.finish_bundle()
    assert ["/x/v.mp4"] in written[1:]


def test_ctrl_c_commits_what_is_finished_says_how_to_go_on_and_exits_130(archive, whole, tmp_path):
    out = tmp_path / "stopped"
    proc = start(archive, out, "--workers", "2")
    wait_for_pieces(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    said = " ".join(output.split())
    assert "stopped:" in said and "files are recorded" in said and "the same command continues" in said
    assert "Traceback" not in output
    assert_whole_files(out)
    rerun = CliRunner().invoke(main, ["run", "--quiet", "--input", str(archive), "--output", str(out)])
    assert rerun.exit_code == 0, rerun.output
    assert_same_as_whole(out, whole)


def _piece(out: Path, piece: str, paths: list[str], mark: bool = True, replaces=()) -> None:
    rows = [{"run_id": "r", "path": p, "uri": p, "folder": "", "stage": "read", "kind": "empty_file",
             "message": "empty", "model_sha256": "m", "processed_at": NOW} for p in paths]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=SCHEMAS["errors"].remove_metadata()).cast(SCHEMAS["errors"])
    if mark:
        pieces.write_piece(str(out), piece, {"errors": table}, replaces)
    else:
        store.write_table(table, str(out / "errors" / f"{piece}.parquet"))


def _paths(out: Path) -> list[str]:
    return sorted(r["path"] for r in committed(out, "errors"))


def test_readers_see_marked_pieces_only_and_a_merge_never_shows_rows_twice(tmp_path, monkeypatch):
    out = tmp_path / "out"
    pieces.clean_uncommitted(str(out))  # as a run's planning does first: an output of pieces
    run = "20261207T000000Z-abcdef"
    _piece(out, f"{run}-p1", ["a", "b"])
    _piece(out, f"{run}-p2", ["c"])
    _piece(out, f"{run}-p3", ["d"], mark=False)  # killed before its marker
    assert _paths(out) == ["a", "b", "c"]
    # a merge killed after its marker, before the old pieces were deleted: they are hidden
    _piece(out, f"{run}-c9", ["a", "b", "c"], replaces=[f"{run}-p1", f"{run}-p2"])
    assert _paths(out) == ["a", "b", "c"]
    pieces.clean_uncommitted(str(out))
    assert sorted(p.stem for p in (out / "errors").glob("*.parquet")) == [f"{run}-c9"]
    _piece(out, f"{run}-p4", ["e"])
    _piece(out, f"{run}-p5", ["f"])
    assert pieces.compact(str(out)) == {"pieces": 3, "after": 1}
    assert _paths(out) == ["a", "b", "c", "e", "f"]
    assert (
        len(list((out / "errors").glob("*.parquet"))) == len(list((out / pieces.COMMITS).glob("*.json"))) == 1
    )


def test_an_output_written_before_pieces_is_read_and_adopted(tmp_path):
    out = tmp_path / "out"
    for run, landed in (("20240101T000000Z-aaaaaa", True), ("20240102T000000Z-bbbbbb", False)):
        _piece(out, f"{run}-00000", [run], mark=False)
        if landed:  # runs before pieces committed by moving their images last
            (out / "images").mkdir(exist_ok=True)
            store.write_table(SCHEMAS["images"].empty_table(), str(out / "images" / f"{run}-00000.parquet"))
    assert _paths(out) == ["20240101T000000Z-aaaaaa"]
    pieces.clean_uncommitted(str(out))
    assert json.loads((out / pieces.COMMITS / "20240101T000000Z-aaaaaa-00000.json").read_text())["rows"]
    assert not (out / "errors" / "20240102T000000Z-bbbbbb-00000.parquet").exists()


def test_unmarked_embeddings_are_deleted_at_once_and_committed_ones_stay(tmp_path):
    """`people forget` first deletes the embeddings a killed run left uncommitted: biometric data
    that no reader sees must not wait for the next run to be cleaned."""
    out = tmp_path / "out"
    pieces.clean_uncommitted(str(out))
    kept = "20261207T000000Z-abcdef-p1"
    pieces.write_piece(str(out), kept, {"embeddings": SCHEMAS["embeddings"].empty_table()})
    store.write_table(SCHEMAS["embeddings"].empty_table(), str(out / "embeddings" / f"{kept}.parquet"))
    left = out / "embeddings" / "20261207T000000Z-abcdef-p2.parquet"  # never marked
    store.write_table(SCHEMAS["embeddings"].empty_table(), str(left))
    assert pieces.drop_unmarked(str(out), "embeddings") == 1
    assert not left.exists() and (out / "embeddings" / f"{kept}.parquet").exists()
