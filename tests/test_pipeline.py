"""`fer-mine run` end to end on generated photos with real faces, and on a corpus of bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmarks.scenes import compose, save_jpeg, write_archive
from conftest import portable_deployment
from fer_mine.cli import main
from fer_mine.labels import EMOTIONS
from fer_mine.records.schema import LANDMARK_COLUMNS, SCHEMAS


def table(out: Path, name: str) -> list[dict]:
    files = sorted((out / name).glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    rel = con.sql(
        "SELECT * FROM read_parquet($files) ORDER BY path", params={"files": [str(f) for f in files]}
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def run_cli(*args: str) -> object:
    return CliRunner().invoke(main, ["run", "--quiet", *args])


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("photos")
    truth = write_archive(folder, 6, seed=3)
    return folder, truth


@pytest.fixture(scope="module")
def mined(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mined")
    result = run_cli("--input", str(archive[0]), "--output", str(out))
    assert result.exit_code == 0, result.output
    return out


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0, min(ay1, by1) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def test_every_photo_is_an_images_row_and_faces_match_the_truth(archive, mined):
    _, truth = archive
    images = table(mined, "images")
    assert sorted(r["path"] for r in images) == sorted(truth)
    assert table(mined, "errors") == []
    faces = table(mined, "faces")
    by_path = {r["path"]: r["face_count"] for r in images}
    for path in truth:
        assert by_path[path] == sum(1 for f in faces if f["path"] == path)
    matched = sum(
        any(
            iou((f["box_x"], f["box_y"], f["box_w"], f["box_h"]), box) >= 0.3 for f in faces if f["path"] == p
        )
        for p, boxes in truth.items()
        for box in boxes
    )
    assert matched >= 0.8 * sum(len(b) for b in truth.values())


def _default_precision() -> str:
    """What `run` classifies in on the CPU: int8 where the shipped card keeps its calibration."""
    import json

    from fer_mine.amacnn.catalog import CARD_FILE, shipped_model_dir

    return "int8" if json.loads((shipped_model_dir() / CARD_FILE).read_text())["int8"]["kept"] else "float32"


def test_face_records_carry_what_the_schema_promises(archive, mined):
    faces = table(mined, "faces")
    assert faces, "the synthetic archive has faces"
    for face in faces:
        probs = [face[f"p_{label}"] for label in EMOTIONS]
        assert abs(sum(probs) - 1) < 1e-4
        assert face["emotion"] == EMOTIONS[int(np.argmax(probs))]
        assert face["confidence"] == max(probs)
        assert face["folder"] == face["path"].split("/")[0]
        assert face["taken_at"] is not None  # the archive writes EXIF DateTimeOriginal
        assert face["detector"] == "yunet" and 0.6 <= face["detector_score"] <= 1
        # the five landmarks lie inside the box, the eyes above the mouth
        x0, y0, x1, y1 = (
            face["box_x"],
            face["box_y"],
            face["box_x"] + face["box_w"],
            face["box_y"] + face["box_h"],
        )
        for column in LANDMARK_COLUMNS:
            assert (
                (x0 if column.endswith("_x") else y0) - 2
                <= face[column]
                <= (x1 if column.endswith("_x") else y1) + 2
            )
        assert max(face["right_eye_y"], face["left_eye_y"]) < min(face["mouth_right_y"], face["mouth_left_y"])
        assert face["aligned"] is True  # the default: crops rotated so the eyes are level
        assert len(face["image_sha256"]) == len(face["model_sha256"]) == 64
        assert face["tta"] is True  # the default: each face also classified mirrored
        assert face["precision"] == _default_precision()
    import pyarrow.parquet as pq

    for name, schema in SCHEMAS.items():
        for path in (mined / name).glob("*.parquet"):
            assert pq.read_schema(path).remove_metadata().equals(schema.remove_metadata())


def test_a_second_run_only_processes_new_images(archive, mined, tmp_path):
    folder, _ = archive
    out = tmp_path / "out"
    shutil.copytree(mined, out)
    rng = np.random.default_rng(9)
    save_jpeg(compose(rng, 640, 480, [120]).image, folder / "new-album" / "late.jpg")
    try:
        result = CliRunner().invoke(main, ["run", "--input", str(folder), "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert "6 already recorded, 1 to process" in result.output.replace("\n", " ")
        images = table(out, "images")
        assert len(images) == 7 and len({r["path"] for r in images}) == 7
        result = run_cli("--input", str(folder), "--output", str(out), "--overwrite")
        assert len(table(out, "images")) == 7
    finally:
        shutil.rmtree(folder / "new-album")


def test_an_output_keeps_one_tta_setting_and_one_schema(archive, mined, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    shutil.copytree(mined, out)
    result = run_cli("--input", str(archive[0]), "--output", str(out), "--no-tta")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "classified with flip TTA" in result.output and "--overwrite" in result.output
    # tables an older fer-mine wrote are refused before anything is added beside them
    images = next((out / "images").glob("*.parquet"))
    old = pq.read_table(images)
    pq.write_table(
        old.replace_schema_metadata({b"fer_mine_table": b"images", b"fer_mine_schema": b"1"}), images
    )
    result = run_cli("--input", str(archive[0]), "--output", str(out))
    assert result.exit_code == 2 and "schema 1" in result.output
    result = run_cli("--input", str(archive[0]), "--output", str(out), "--no-tta", "--overwrite")
    assert result.exit_code == 0, result.output
    assert {f["tta"] for f in table(out, "faces")} == {False}


def test_an_output_keeps_one_precision(archive, mined, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(mined, out)
    default = _default_precision()
    other = "float32" if default == "int8" else "int8"
    result = run_cli("--input", str(archive[0]), "--output", str(out), "--precision", other)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"classified in {default}" in result.output and "--precision" in result.output
    result = run_cli("--input", str(archive[0]), "--output", str(out), "--precision", other, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (
        {f["precision"] for f in table(out, "faces")}
        == {r["precision"] for r in table(out, "images")}
        == {other}
    )


def test_a_killed_run_leaves_nothing_visible_and_the_next_completes_it(archive, mined, tmp_path):
    folder, _ = archive
    out = tmp_path / "out"
    # what a kill between Beam writing and commit leaves: staged files, and a faces file
    # whose images never landed
    (out / ".staging" / "x" / "faces").mkdir(parents=True)
    (out / ".staging" / "x" / "faces" / "half.parquet").write_bytes(b"PAR1 half")
    (out / "faces").mkdir()
    shutil.copy(
        next((mined / "faces").glob("*.parquet")), out / "faces" / "20990101T000000Z-dead00-00000.parquet"
    )
    result = run_cli("--input", str(folder), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert not (out / ".staging").exists()
    faces, reference = table(out, "faces"), table(mined, "faces")
    key = lambda r: (r["path"], r["face_index"])  # noqa: E731
    assert sorted(map(key, faces)) == sorted(map(key, reference))


def same_records(left: list[dict], right: list[dict]) -> None:
    """Equal rows, up to run id, time, and float noise (batches differ between runners); two
    empty tables are not the same records but a run that found nothing."""
    order = lambda rows: sorted(rows, key=lambda r: (r["path"], r.get("face_index", 0)))  # noqa: E731
    left, right = order(left), order(right)
    assert left, "no records to compare"
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        for column in a:
            if column in ("run_id", "processed_at"):
                continue
            if isinstance(a[column], float):
                assert a[column] == pytest.approx(b[column], abs=1e-4), column
            else:
                assert a[column] == b[column], column


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_two_workers_give_the_same_records(archive, mined, tmp_path, mode):
    result = run_cli("--input", str(archive[0]), "--output", str(tmp_path / "w2"), "--workers", "2",
                     "--worker-mode", mode)  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("faces", "images"):
        same_records(table(tmp_path / "w2", name), table(mined, name))


@pytest.mark.parametrize(
    ("workers", "mode", "runner", "files", "cores", "chosen"),
    [
        (None, "threads", "DirectRunner", 1000, 16, (16, "threads", 1)),  # auto: a thread per core
        (None, "threads", "DirectRunner", 3, 16, (3, "threads", 5)),  # never more threads than files
        (None, "processes", "DirectRunner", 1, 16, (1, "threads", 16)),  # one file: in-process
        (None, "threads", "DirectRunner", 850, 2, (2, "threads", 1)),
        (4, "processes", "DirectRunner", 1000, 16, (4, "processes", 4)),  # a given count stands
        (None, "threads", "DataflowRunner", 1000, 16, (1, "threads", None)),  # its machines decide
    ],
)
def test_workers_auto_is_a_thread_per_core_and_a_given_count_stands(
    workers, mode, runner, files, cores, chosen
):
    from fer_mine.pipeline.plan import choose_workers
    from fer_mine.pipeline.settings import RunSettings

    settings = RunSettings(inputs=["x"], output="y", workers=workers, worker_mode=mode, runner=runner)
    assert choose_workers(settings, files, cores) == chosen


def test_plain_run_says_how_many_workers_it_chose(archive, tmp_path, monkeypatch):
    monkeypatch.setattr("fer_mine.pipeline.plan.os.cpu_count", lambda: 4)
    result = CliRunner().invoke(main, ["run", "--input", str(archive[0]), "--output", str(tmp_path / "auto")])
    assert result.exit_code == 0, result.output
    assert "x4 workers (threads)" in " ".join(result.output.split())
    refused = run_cli("--input", str(archive[0]), "--output", str(tmp_path / "x"), "--workers", "many")
    assert refused.exit_code == 2 and "neither auto nor a number of workers" in refused.output


def test_aligned_mode_treats_each_image_as_one_face(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"face{i}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    result = run_cli("--input", str(tmp_path), "--output", str(tmp_path / "out"), "--aligned")
    assert result.exit_code == 0, result.output
    faces = table(tmp_path / "out", "faces")
    assert len(faces) == 3
    assert all(f["detector"] == "aligned" and f["box_w"] == 48 and f["detector_score"] is None for f in faces)
    assert all(f["right_eye_x"] is None and f["aligned"] is False for f in faces)  # no landmarks here


@pytest.fixture
def bad_corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Every kind of file a real archive throws at us, with the error kind we expect (None = fine)."""
    root = tmp_path / "bad"
    root.mkdir()
    rng = np.random.default_rng(0)
    good = compose(rng, 400, 300, [100]).image
    expected: dict[str, str | None] = {}

    def add(name: str, kind: str | None, writer) -> None:
        writer(root / name)
        expected[name] = kind

    add("empty.jpg", "empty_file", lambda p: p.write_bytes(b""))
    jpeg = cv2.imencode(".jpg", good)[1].tobytes()
    add("truncated.jpg", "corrupt", lambda p: p.write_bytes(jpeg[: len(jpeg) // 3]))
    add("text.jpg", "not_an_image", lambda p: p.write_text("hello, not a photo\n"))
    add("sixteen.png", None, lambda p: cv2.imwrite(str(p), (good[:, :, 0].astype(np.uint16) * 257)))
    add("rgba.png", None, lambda p: cv2.imwrite(str(p), cv2.cvtColor(good, cv2.COLOR_BGR2BGRA)))
    add("cmyk.jpg", None, lambda p: Image.fromarray(good[:, :, ::-1]).convert("CMYK").save(p, "JPEG"))
    add("palette.png", None, lambda p: Image.open(_gif(good, tmp_path)).save(p))
    add("tiny.png", None, lambda p: cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8)))
    # shrunk to the detector's size it would be 0 px high: an error in our words, not OpenCV's
    add("thin.png", "too_thin", lambda p: cv2.imwrite(str(p), np.zeros((10, 40000, 3), np.uint8)))
    add("huge.png", "too_large", lambda p: cv2.imwrite(str(p), np.zeros((3000, 3000), np.uint8)))
    add("locked.jpg", "permission_denied", lambda p: (p.write_bytes(jpeg), p.chmod(0)))
    add("broken-link.jpg", "missing", lambda p: os.symlink(root / "nowhere.jpg", p))
    add("folder.jpg", "not_a_file", lambda p: p.mkdir())
    # opening a FIFO for reading waits for a writer: it must be refused without an open
    add("pipe.jpg", "not_a_file", lambda p: os.mkfifo(p))
    add("socket.png", "not_a_file", _bind_socket)
    add("device.jpg", "not_a_file", lambda p: os.symlink("/dev/zero", p))  # endless bytes
    # videos go through OpenCV's VideoCapture, which would block on a FIFO or read /dev/zero forever
    add("pipe.mp4", "not_a_file", lambda p: os.mkfifo(p))
    add("device.webm", "not_a_file", lambda p: os.symlink("/dev/zero", p))
    add("text.mkv", "not_a_video", lambda p: p.write_text("hello, not a video\n"))
    add("locked.mov", "permission_denied", lambda p: (p.write_bytes(jpeg), p.chmod(0)))
    weird = os.fsdecode(b"caf\xe9-latin1.jpg")  # not UTF-8
    (root / weird).write_bytes(jpeg)
    expected["caf\\xe9-latin1.jpg"] = None
    (root / "notes.txt").write_text("not an image type at all")
    (root / "UPPER.JPEG").write_bytes(jpeg)
    expected["UPPER.JPEG"] = None
    return root, expected


def _bind_socket(path: Path) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays, as a dead server leaves it


def _gif(image: np.ndarray, folder: Path) -> Path:
    path = folder / "palette.gif"
    Image.fromarray(image[:, :, ::-1]).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    return path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file_is_an_error_for_non_root(bad_corpus, tmp_path):
    root, _ = bad_corpus
    run_cli("--input", str(root), "--output", str(tmp_path / "out"), "--max-pixels", "5000000")
    kinds = {r["path"]: r["kind"] for r in table(tmp_path / "out", "errors")}
    assert kinds["locked.jpg"] == "permission_denied"


def test_bad_files_become_error_rows_and_the_run_finishes(bad_corpus, tmp_path):
    import signal

    root, expected = bad_corpus
    out = tmp_path / "out"

    def hung(*_) -> None:
        raise TimeoutError("fer-mine run hung on the bad corpus (reading the FIFO?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(300)  # a regression would block forever: fail instead
    try:
        result = CliRunner().invoke(
            main, ["run", "--input", str(root), "--output", str(out), "--max-pixels", "5000000"]
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output
    errors = {r["path"]: r["kind"] for r in table(out, "errors")}
    images = {r["path"] for r in table(out, "images")}
    if os.geteuid() == 0:  # root can read it anyway: then it is an ordinary image
        expected["locked.jpg"] = None
        expected["locked.mov"] = None
    assert errors == {k: v for k, v in expected.items() if v}
    messages = {r["path"]: r["message"] for r in table(out, "errors")}
    assert "40000x10 is too thin" in messages["thin.png"]
    # every message in our words: no OpenCV assertion text or source file names
    assert not [m for m in messages.values() if "Assertion failed" in m or ".cpp" in m]
    assert images == {k for k, v in expected.items() if not v}
    assert "notes.txt" not in errors and "notes.txt" not in images
    assert "1 other files are not photos or videos" in " ".join(result.output.split())  # said, not lost
    strict = run_cli(
        "--input", str(root), "--output", str(tmp_path / "o2"), "--max-pixels", "5000000", "--strict"
    )
    assert strict.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{missing}", "--output", "{out}"], "input folder not found"),
        (["--input", "{tmp}", "--output", "{file}"], "exists and is not a folder"),
        (["--input", "{tmp}", "--output", "{out}", "--detector-model", "{file}"], "not a YuNet ONNX file"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "a-file").write_text("x")
    values = {
        "missing": tmp_path / "nope",
        "out": tmp_path / "out",
        "tmp": tmp_path,
        "file": tmp_path / "a-file",
    }
    result = run_cli(*(a.format(**values) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def portable_endpoints():
    with portable_deployment(dict(os.environ)) as endpoints:
        yield endpoints


def test_portable_runner_with_external_workers_gives_the_same_records(
    archive, mined, tmp_path, portable_endpoints
):
    job, pool = portable_endpoints
    out = tmp_path / "portable"
    result = run_cli("--input", str(archive[0]), "--output", str(out), "--runner", "PortableRunner", "--",
                     f"--job_endpoint=localhost:{job}", "--environment_type=EXTERNAL",
                     f"--environment_config=localhost:{pool}")  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("faces", "images"):
        same_records(table(out, name), table(mined, name))


def test_a_real_kill_mid_run_then_rerun_gives_one_record_per_face(archive, mined, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "fer_mine.cli",
        "run",
        "--quiet",
        "--input",
        str(archive[0]),
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "_commits").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # into the pipeline proper
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert table(out, "faces") == [] or len(table(out, "images")) == len(table(mined, "images"))
    rerun = run_cli("--input", str(archive[0]), "--output", str(out))
    assert rerun.exit_code == 0, rerun.output
    key = lambda r: (r["path"], r["face_index"])  # noqa: E731
    assert sorted(map(key, table(out, "faces"))) == sorted(map(key, table(mined, "faces")))
    assert sorted(r["path"] for r in table(out, "images")) == sorted(
        r["path"] for r in table(mined, "images")
    )
