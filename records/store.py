"""Where `fer-mine run` writes its tables and the reports read them: a local folder or a bucket
(s3://, gs://, any scheme Beam's FileSystems knows).

Listing, reading Parquet footers and rows, moving staged files into place (a rename locally,
copy + delete on object stores) and cleaning up all go through here, so the run, a killed
run's cleanup, the incremental check, the schema refusal and the reports have one code path
for a folder and a bucket. Buckets go through Beam's FileSystems; local paths through os and
pyarrow directly, which gives the same answers without importing Beam (a second on every
`fer-mine report`).
"""

from __future__ import annotations

import glob
import os
import posixpath
import shutil
import threading
from contextlib import contextmanager
from typing import IO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fer_mine.errors import FerMineError

# the extra that brings each scheme's client library (pyproject.toml)
EXTRAS = {"s3": "s3", "gs": "gcp"}


def is_remote(path: str) -> bool:
    return "://" in path


def scheme(path: str) -> str:
    return path.split("://", 1)[0] if is_remote(path) else "file"


def filesystems(options: object | None = None):
    """Beam's FileSystems, with the pipeline options its object-store clients read (endpoint,
    region, credentials); without them Beam's S3 client refuses to start."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if options is not None or FileSystems._pipeline_options is None:
        FileSystems.set_options(options if options is not None else PipelineOptions([]))
    _share_s3_clients()
    return FileSystems


def _share_s3_clients() -> None:
    """Beam's S3 filesystem makes a new boto3 session and client for every operation (each
    listing, open, delete). That is about 0.25 s of botocore loading its JSON service models
    each time: 255 of 276 ms a listing (measured 2026-12-07, cProfile). boto3 clients are
    thread-safe, so one client per pipeline options object serves every operation, and each
    of Beam's wrappers keeps its own download state. A wrapper whose fresh state is anything
    but the client and plain values is left as Beam makes it."""
    try:
        from apache_beam.io.aws.clients.s3 import boto3_client
    except ImportError:  # Beam without its AWS extra
        return
    wrapper = boto3_client.Client
    if getattr(wrapper.__init__, "shares_clients", False):
        return
    original = wrapper.__init__
    made: list[tuple[object, dict]] = []  # (options, a fresh wrapper's attributes)
    lock = threading.Lock()

    def init(self, options) -> None:
        with lock:
            fresh = next((state for known, state in made if known is options), None)
        if fresh is not None:
            vars(self).update(fresh)
            return
        original(self, options)
        state = dict(vars(self))
        if all(
            v is None or isinstance(v, (bool, int, float, str, bytes))
            for k, v in state.items()
            if k != "client"
        ):
            with lock:  # options objects are few (one per pipeline or worker): keep the last 8
                made[:] = [*made[-7:], (options, state)]

    init.shares_clients = True  # type: ignore[attr-defined]
    wrapper.__init__ = init


def check_scheme(path: str) -> None:
    """A bucket path whose client library is not installed, or S3 without credentials, is one
    line. (Without credentials Beam's S3 client would retry every request for minutes.)"""
    if not is_remote(path):
        return
    fs = filesystems()
    try:
        fs.get_filesystem(path)
    except ValueError:
        extra = EXTRAS.get(scheme(path))
        hint = f"pip install 'fer-mine[{extra}]'" if extra else "install Beam's filesystem extra for it"
        raise FerMineError(f"{path}: no filesystem for {scheme(path)}:// here ({hint})") from None
    if scheme(path) == "s3":
        import boto3
        from apache_beam.options.pipeline_options import S3Options

        if fs._pipeline_options.view_as(S3Options).s3_access_key_id:
            return
        if boto3.session.Session().get_credentials() is None:
            raise FerMineError(
                f"{path}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or give -- --s3_access_key_id=... --s3_secret_access_key=...)"
            )


@contextmanager
def storage_errors(what: str):
    """Errors of an object store (no credentials, no bucket, refused) as one line."""
    from apache_beam.io.filesystem import BeamIOError

    try:
        yield
    except FerMineError:
        raise
    except (BeamIOError, OSError, ValueError) as exc:
        detail = getattr(exc, "exception_details", None) or exc
        if isinstance(detail, dict) and detail:
            detail = next(iter(detail.values()))
        message = " ".join(str(detail).split())[:300]
        raise FerMineError(f"{what}: {message}") from None


def join(root: str, *parts: str) -> str:
    return posixpath.join(root.rstrip("/"), *parts) if is_remote(root) else os.path.join(root, *parts)


def list_files(folder: str, suffix: str = ".parquet") -> list[str]:
    """Files directly in `folder` ending in `suffix`, sorted; none if it does not exist."""
    if not is_remote(folder):
        return sorted(glob.glob(os.path.join(glob.escape(folder), f"*{suffix}")))
    with storage_errors(f"cannot list {folder}"):
        matched = filesystems().match([join(folder, f"*{suffix}")])[0].metadata_list
    return sorted(m.path for m in matched)


def list_tree(folder: str) -> list[str]:
    """Every object under a bucket prefix, at any depth."""
    with storage_errors(f"cannot list {folder}"):
        return sorted(m.path for m in filesystems().match([join(folder, "**")])[0].metadata_list)


@contextmanager
def open_read(path: str) -> IO[bytes]:
    if not is_remote(path):
        with open(path, "rb") as handle:
            yield handle
        return
    from apache_beam.io.filesystem import CompressionTypes

    with storage_errors(f"cannot read {path}"):
        handle = filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    with handle:
        yield handle


def arrow_filesystem():
    """Beam's FileSystems as a read-only pyarrow filesystem, so that Parquet files in a bucket
    are read as a pyarrow dataset: the columns and row groups a query needs, batch by batch,
    instead of every file whole into memory first."""
    return pafs.PyFileSystem(_BeamFiles())


def _read_only(*_, **__):
    raise NotImplementedError("fer-mine reads buckets through this filesystem, never writes")


class _BeamFiles(pafs.FileSystemHandler):
    """pyarrow's side of `arrow_filesystem`: file sizes from a listing, seekable reads from
    Beam's object-store clients (S3, GCS)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BeamFiles)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "beam"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list:
        infos = []
        for path in paths:
            with storage_errors(f"cannot reach {path}"):
                found = filesystems().match([path])[0].metadata_list
            kind = pafs.FileType.File if found else pafs.FileType.NotFound
            infos.append(pafs.FileInfo(path, kind, size=found[0].size_in_bytes if found else None))
        return infos

    def open_input_file(self, path: str) -> pa.NativeFile:
        from apache_beam.io.filesystem import CompressionTypes

        with storage_errors(f"cannot read {path}"):
            handle = filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        return pa.PythonFile(handle, mode="r")

    open_input_stream = open_input_file
    get_file_info_selector = create_dir = delete_dir = delete_dir_contents = _read_only
    delete_root_dir_contents = delete_file = move = copy_file = _read_only
    open_output_stream = open_append_stream = _read_only


def read_schema(path: str) -> pa.Schema:
    with open_read(path) as handle:
        return pq.read_schema(handle)


def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    with open_read(path) as handle:
        return pq.read_table(handle, columns=columns)


def _write_whole(path: str, write) -> None:
    """`write(handle)` into a file whole or not at all: locally through a temporary name, so a
    killed command leaves the old file; an object store puts an object whole or not at all."""
    if not is_remote(path):
        with storage_errors(f"cannot write {path}"):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            partial = f"{path}.partial"
            with open(partial, "wb") as handle:
                write(handle)
            os.replace(partial, path)
        return
    from apache_beam.io.filesystem import CompressionTypes

    with (
        storage_errors(f"cannot write {path}"),
        filesystems().create(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle,
    ):
        write(handle)


def write_table(table: pa.Table, path: str) -> None:
    """A whole Parquet file, replacing any there."""
    _write_whole(path, lambda handle: pq.write_table(table, handle))


def num_rows(path: str) -> int:
    with open_read(path) as handle:
        return pq.read_metadata(handle).num_rows


def write_text(text: str, path: str) -> None:
    """A small file whole or not at all, as `write_table`."""
    _write_whole(path, lambda handle: handle.write(text.encode()))


def read_text(path: str) -> str:
    with open_read(path) as handle:
        return handle.read().decode()


def is_file(path: str) -> bool:
    """A plain object/file at exactly `path` (a folder or prefix is not)."""
    if not is_remote(path):
        return os.path.isfile(path)
    with storage_errors(f"cannot reach {path}"):
        return bool(filesystems().match([path])[0].metadata_list)


def make_folder(path: str) -> None:
    """A local folder is created; object stores have no folders to create."""
    if not is_remote(path):
        with storage_errors(f"cannot create {path}"):
            os.makedirs(path, exist_ok=True)


def move(sources: list[str], targets: list[str]) -> None:
    """Rename locally; copy + delete on an object store (Beam's rename)."""
    if not sources:
        return
    if not is_remote(sources[0]):
        for source, target in zip(sources, targets, strict=True):
            os.replace(source, target)
        return
    with storage_errors("cannot move staged files into place"):
        filesystems().rename(sources, targets)


def delete(paths: list[str]) -> None:
    if not paths:
        return
    if not is_remote(paths[0]):
        for path in paths:
            os.remove(path)
        return
    with storage_errors("cannot delete"):
        filesystems().delete(paths)


def delete_tree(folder: str) -> None:
    """A folder (a bucket prefix) and everything under it; nothing if it is not there."""
    if is_remote(folder):
        delete(list_tree(folder))
    else:
        shutil.rmtree(folder, ignore_errors=True)
