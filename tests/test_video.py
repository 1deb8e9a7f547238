"""Videos in `fer-mine run`: sampled frames with times, the videos table, damaged files, and
the video_timeline report. The videos are written here with cv2.VideoWriter from scenes
holding real faces (benchmarks/scenes.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from test_pipeline import table

from benchmarks.scenes import compose, save_jpeg
from fer_mine.cli import main
from fer_mine.reports.archive import Archive
from fer_mine.reports.params import ReportParams

FPS = 5  # frames per second of the test videos
SIZE = (640, 480)


def write_video(path: Path, scenes: list[np.ndarray], seconds_each: float, fourcc: str = "mp4v") -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for scene in scenes:
        for _ in range(round(seconds_each * FPS)):
            writer.write(scene)
    writer.release()


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """Two photos; a 20 s MP4 (10 s of one face, then 10 s of two); an AVI cut in half;
    an MP4 cut in half (its index is at the end: unreadable); an empty .mov."""
    folder = tmp_path_factory.mktemp("footage")
    rng = np.random.default_rng(5)
    for name in ("a.jpg", "b.jpg"):
        save_jpeg(compose(rng, 640, 480, [140]).image, folder / "photos" / name)
    one, two = compose(rng, *SIZE, [140]).image, compose(rng, *SIZE, [110, 110]).image
    (folder / "clips").mkdir()
    write_video(folder / "clips" / "party.MP4", [one, two], 10)
    write_video(folder / "clips" / "long.avi", [one] * 2, 5, "MJPG")
    data = (folder / "clips" / "long.avi").read_bytes()
    (folder / "clips" / "long.avi").write_bytes(data[: len(data) // 2])
    write_video(folder / "clips" / "cut.mp4", [two], 4)
    data = (folder / "clips" / "cut.mp4").read_bytes()
    (folder / "clips" / "cut.mp4").write_bytes(data[: len(data) // 2])
    (folder / "clips" / "empty.mov").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def mined(footage, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mined")
    result = CliRunner().invoke(main, ["run", "--input", str(footage), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 of them videos" in result.output.replace("\n", " ")
    return out


def test_a_video_gives_one_images_row_per_sampled_second_with_its_faces(mined):
    frames = [r for r in table(mined, "images") if r["path"] == "clips/party.MP4"]
    frames.sort(key=lambda r: r["frame_index"])
    assert [r["video_time_s"] for r in frames] == [float(t) for t in range(20)]
    assert [r["frame_index"] for r in frames] == [t * FPS for t in range(20)]
    assert [r["face_count"] for r in frames] == [1] * 10 + [2] * 10
    faces = [r for r in table(mined, "faces") if r["path"] == "clips/party.MP4"]
    assert len(faces) == 30 and all(f["frame_index"] % FPS == 0 for f in faces)
    photos = [r for r in table(mined, "images") if r["path"].startswith("photos/")]
    assert len(photos) == 2 and all(r["frame_index"] is None and r["video_time_s"] is None for r in photos)


def test_the_videos_table_records_each_video_once(mined):
    videos = {r["path"]: r for r in table(mined, "videos")}
    assert set(videos) == {"clips/party.MP4", "clips/long.avi"}
    party = videos["clips/party.MP4"]
    assert (party["fps"], party["frame_count"], party["duration_s"]) == (5.0, 100, 20.0)
    assert (party["frames_read"], party["frames_sampled"], party["complete"]) == (100, 20, True)
    assert (party["width"], party["height"], party["sample_fps"]) == (*SIZE, 1.0)


def test_damaged_videos_are_error_rows_and_keep_the_frames_read_before(mined):
    errors = {r["path"]: r for r in table(mined, "errors")}
    assert errors["clips/cut.mp4"]["kind"] == "not_a_video"
    assert errors["clips/empty.mov"]["kind"] == "empty_file"
    broken = errors["clips/long.avi"]
    assert broken["kind"] == "truncated" and "are kept" in broken["message"]
    long = table(mined, "videos")[0]
    assert long["path"] == "clips/long.avi" and not long["complete"]
    assert 0 < long["frames_read"] < long["frame_count"] == 50
    kept = [r for r in table(mined, "images") if r["path"] == "clips/long.avi"]
    assert len(kept) == long["frames_sampled"] > 0
    assert not [r for r in table(mined, "images") if r["path"] == "clips/cut.mp4"]


def test_photos_give_the_same_result_with_and_without_videos(footage, mined, tmp_path):
    out = tmp_path / "photos-only"
    result = CliRunner().invoke(
        main, ["run", "--quiet", "--input", str(footage), "--output", str(out), "--video-fps", "0"]
    )
    assert result.exit_code == 0, result.output
    assert not table(out, "videos") and {r["path"] for r in table(out, "images")} == {
        "photos/a.jpg",
        "photos/b.jpg",
    }
    # batches of other sizes change float rounding in the last digits, nothing more
    keys = ("path", "face_index", "box_x", "box_y", "emotion")
    alone = [(*(f[k] for k in keys), round(f["confidence"], 4)) for f in table(out, "faces")]
    beside = [
        (*(f[k] for k in keys), round(f["confidence"], 4))
        for f in table(mined, "faces")
        if f["path"].startswith("photos/")
    ]
    assert sorted(alone) == sorted(beside) and alone


def test_a_rerun_treats_each_video_as_done(footage, mined, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(mined, out)
    result = CliRunner().invoke(main, ["run", "--input", str(footage), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 already recorded, 0 to process" in result.output.replace("\n", " ")


def test_video_timeline_report_buckets_each_video(mined, tmp_path):
    result = Archive(mined, ReportParams(bucket_s=10)).report("video_timeline")
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows if r[0] == "clips/party.MP4"]
    assert [(r["bucket_start_s"], r["frames"], r["faces"]) for r in rows] == [
        (None, 20, 30),
        (0, 10, 10),
        (10, 10, 20),
    ]
    assert rows[0]["changes"] == int(rows[1]["dominant_emotion"] != rows[2]["dominant_emotion"])
    emotion_columns = [
        c
        for c in result.columns
        if c not in ("path", "bucket_start_s", "frames", "faces", "dominant_emotion", "changes")
    ]
    for row in rows:
        assert sum(row[c] for c in emotion_columns) == pytest.approx(1.0)
    html = tmp_path / "report.html"
    cli = CliRunner().invoke(
        main, ["report", str(mined), "--html", str(html), "--name", "video_timeline", "--name", "gallery"]
    )
    assert cli.exit_code == 0, cli.output
    page = html.read_text()
    assert "alt='video_timeline chart'" in page and "party.MP4 at " in page and "image moved" not in page


def test_transitions_follow_frame_order_inside_each_video(mined):
    images = table(mined, "images")
    with_faces = {}
    for row in images:
        if row["face_count"]:
            with_faces[row["path"]] = with_faces.get(row["path"], 0) + 1
    # a sequence of n images with faces has n - 1 transitions: the two photos share their
    # folder's sequence, and each video is a sequence of its own (not joined to the next one)
    photos = sum(n for path, n in with_faces.items() if path.startswith("photos/"))
    videos = [n for path, n in with_faces.items() if path.startswith("clips/")]
    expected = (photos - 1) + sum(n - 1 for n in videos)
    # every face counts here (no quality cut): each image with a face is then in its sequence
    result = Archive(mined, ReportParams(min_quality=0.0)).report("transitions")
    assert sum(r[result.columns.index("transitions")] for r in result.rows) == expected
    assert len(videos) == 2 and expected > 20
