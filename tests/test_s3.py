"""`fer-mine run`, `report` and `query` with input and output in a bucket, against a real S3
protocol server on loopback (moto's server: 127.0.0.1, a free port, stopped at the end)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from benchmarks.scenes import write_archive
from conftest import free_port, portable_deployment
from fer_mine.cli import main

boto3 = pytest.importorskip("boto3", reason="needs boto3 and moto (the test extra installs both)")
moto_server = pytest.importorskip("moto.server", reason="needs moto[server] (the test extra installs it)")

BUCKET = "fer-mine-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, the standard AWS variables pointing at it, a bucket holding 6 photos."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)  # fmt: skip
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    photos = tmp_path_factory.mktemp("photos")
    write_archive(photos, 6, seed=3)
    for path in sorted(photos.rglob("*.jpg")):
        client.put_object(
            Bucket=BUCKET, Key=f"photos/{path.relative_to(photos).as_posix()}", Body=path.read_bytes()
        )
    yield client, endpoint, photos
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def rows(client, prefix: str, table: str) -> list[dict]:
    tables = [
        pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        for key in keys(client, f"{prefix}/{table}/")
    ]
    if not tables:
        return []
    con = duckdb.connect()
    con.register("t", __import__("pyarrow").concat_tables(tables))
    rel = con.sql(
        "SELECT * FROM t ORDER BY path, face_index" if table == "faces" else "SELECT * FROM t ORDER BY path"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def face_keys(records: list[dict]) -> list[tuple]:
    return sorted((r["path"], r["face_index"], r["emotion"]) for r in records)


@pytest.fixture(scope="module")
def mined(s3, tmp_path_factory) -> tuple[str, Path]:
    """The documented bucket-to-bucket command: bucket to bucket, the endpoint given to Beam after `--`; and the
    same photos mined from a local folder, to compare with."""
    _, endpoint, photos = s3
    result = CliRunner().invoke(main, ["run", "--input", f"s3://{BUCKET}/photos", "--output", f"s3://{BUCKET}/mined",
                                       "--", f"--s3_endpoint_url={endpoint}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    local = tmp_path_factory.mktemp("local")
    assert (
        CliRunner().invoke(main, ["run", "--quiet", "--input", str(photos), "--output", str(local)]).exit_code
        == 0
    )
    return "mined", local


def test_a_run_writes_the_tables_into_the_bucket_and_a_rerun_adds_nothing(s3, mined):
    client, _, _ = s3
    prefix, local = mined
    written = keys(client, f"{prefix}/")
    # tables with rows, the markers that commit them, the calibration they were made with (no
    # errors or videos here: no files for them)
    assert {k.split("/")[1] for k in written} == {"faces", "images", "_commits", "_calibration"}
    pieces = {k.split("/")[-1].rsplit(".", 1)[0] for k in written if "/_commits/" in k}
    assert {k.split("/")[-1].rsplit(".", 1)[0] for k in written if "/faces/" in k} <= pieces
    import duckdb as db

    con = db.connect()
    local_faces = con.sql(
        f"SELECT path, face_index, emotion FROM read_parquet('{local}/faces/*.parquet')"
    ).fetchall()
    assert face_keys(rows(client, prefix, "faces")) == sorted(local_faces) and local_faces
    assert len(rows(client, prefix, "images")) == 6
    again = CliRunner().invoke(
        main, ["run", "--input", f"s3://{BUCKET}/photos", "--output", f"s3://{BUCKET}/mined"]
    )
    assert again.exit_code == 0, again.output
    assert "6 already recorded, 0 to process" in " ".join(again.output.split())
    assert keys(client, f"{prefix}/") == written


def test_the_tta_refusal_holds_on_a_bucket(s3, mined):
    result = CliRunner().invoke(
        main, ["run", "--input", f"s3://{BUCKET}/photos", "--output", f"s3://{BUCKET}/mined", "--no-tta"]
    )
    assert result.exit_code == 2 and "classified with flip TTA" in result.output


def test_files_read_at_once_from_a_bucket_each_give_their_own_bytes(s3):
    """Every operation on a bucket shares one boto3 client (records/store.py): each open file
    still keeps its own place."""
    from concurrent.futures import ThreadPoolExecutor

    from fer_mine.records import store

    client, _, _ = s3
    bodies = {f"shared/{i}.bin": os.urandom(200_000 + i) for i in range(4)}
    for key, body in bodies.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def read(key: str) -> bytes:
        with store.open_read(f"s3://{BUCKET}/{key}") as handle:
            return b"".join(iter(lambda: handle.read(4096), b""))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(read, bodies)) == list(bodies.values())
    with (
        store.open_read(f"s3://{BUCKET}/shared/0.bin") as a,
        store.open_read(f"s3://{BUCKET}/shared/1.bin") as b,
    ):
        assert (a.read(10), b.read(10), a.read(10)) == (bodies["shared/0.bin"][:10], bodies["shared/1.bin"][:10],
                                                       bodies["shared/0.bin"][10:20])  # fmt: skip


def test_report_and_query_read_the_bucket(s3, mined):
    result = CliRunner().invoke(main, ["query", f"s3://{BUCKET}/mined", "select count(*) as n from images",
                                       "--format", "csv"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["n", "6"]
    report = CliRunner().invoke(
        main, ["report", f"s3://{BUCKET}/mined", "--name", "overview", "--format", "csv"]
    )
    assert report.exit_code == 0, report.output
    assert "images,6" in report.output


def test_a_killed_run_on_a_bucket_then_a_rerun_gives_one_record_per_face(s3, mined):
    client, _, _ = s3
    prefix, _ = mined
    out = f"s3://{BUCKET}/killed"
    cmd = [sys.executable, "-m", "fer_mine.cli", "run", "--quiet", "--input", f"s3://{BUCKET}/photos",
           "--output", out]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not keys(client, "killed/") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = CliRunner().invoke(main, ["run", "--quiet", "--input", f"s3://{BUCKET}/photos", "--output", out])
    assert rerun.exit_code == 0, rerun.output
    assert face_keys(rows(client, "killed", "faces")) == face_keys(rows(client, prefix, "faces"))
    assert [r["path"] for r in rows(client, "killed", "images")] == [
        r["path"] for r in rows(client, prefix, "images")
    ]
    # nothing a reader would not see is left: every table file belongs to a committed piece
    left = keys(client, "killed/")
    committed = {k.split("/")[-1].rsplit(".", 1)[0] for k in left if "/_commits/" in k}
    tables = [k for k in left if k.split("/")[1] in ("faces", "images", "errors", "videos", "embeddings")]
    assert {k.split("/")[-1].rsplit(".", 1)[0] for k in tables} <= committed


def test_the_portable_runner_reads_and_writes_the_bucket(s3, mined):
    client, endpoint, _ = s3
    with portable_deployment(dict(os.environ)) as (job, pool):
        result = CliRunner().invoke(main, [
            "run", "--quiet", "--input", f"s3://{BUCKET}/photos", "--output", f"s3://{BUCKET}/portable",
            "--runner", "PortableRunner", "--", f"--job_endpoint=localhost:{job}", "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool}", f"--s3_endpoint_url={endpoint}",
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert face_keys(rows(client, "portable", "faces")) == face_keys(rows(client, mined[0], "faces"))


def test_a_missing_bucket_or_credentials_is_one_line(s3, monkeypatch, tmp_path):
    result = CliRunner().invoke(
        main, ["run", "--input", "s3://no-such-bucket/photos", "--output", str(tmp_path / "out")]
    )
    assert (
        result.exit_code == 2 and "input not found: nothing under s3://no-such-bucket/photos" in result.output
    )
    assert not (tmp_path / "out").exists()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no cloud machine to ask here
    result = CliRunner().invoke(main, ["query", f"s3://{BUCKET}/mined", "select 1"])
    assert result.exit_code == 2 and "no AWS credentials found" in result.output
    assert "Traceback" not in result.output


def test_people_on_a_bucket_is_told_apart_named_and_forgotten_there(s3, mined, tmp_path):
    client, _, photos = s3
    out = f"s3://{BUCKET}/people"
    ran = CliRunner().invoke(
        main, ["run", "--quiet", "--input", f"s3://{BUCKET}/photos", "--output", out, "--people"]
    )
    assert ran.exit_code == 0, ran.output
    local = tmp_path / "local"
    assert CliRunner().invoke(main, ["run", "--quiet", "--input", str(photos), "--output", str(local),
                                     "--people"]).exit_code == 0  # fmt: skip
    count = "select count(distinct person_id) as n from faces"
    ids = [CliRunner().invoke(main, ["query", where, count, "--format", "csv", "--min-quality", "0"]).output.split()
           for where in (out, str(local))]  # fmt: skip
    assert ids[0] == ids[1] and int(ids[0][1]) >= 1  # the same people as from a folder
    named = CliRunner().invoke(main, ["people", "name", out, "P1", "Eileen"])
    assert named.exit_code == 0, named.output
    listed = CliRunner().invoke(main, ["people", "list", out])
    assert listed.exit_code == 0 and "Eileen" in listed.output
    assert keys(client, "people/people/") == ["people/people/forgotten.parquet", "people/people/names.parquet",
                                               "people/people/persons.parquet"]  # fmt: skip
    forgot = CliRunner().invoke(main, ["people", "forget", out, "--all"])
    assert forgot.exit_code == 0, forgot.output
    # every embedding, person and name gone; kept: the forgotten faces' keys (no biometric data)
    assert not keys(client, "people/embeddings/")
    assert keys(client, "people/people/") == ["people/people/forgotten.parquet"]
    assert face_keys(rows(client, "people", "faces")) == face_keys(rows(client, mined[0], "faces"))
