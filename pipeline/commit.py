"""The last step of `fer-mine run`: records committed in pieces while the run goes.

Each worker gathers the rows of the files it finished (a file is finished with its `last`
Unit: a photo at once, a video after its last frame) and commits them as one piece
(records/pieces.py) every `commit_every` images or COMMIT_FACES faces, and at the end of each
bundle. A piece is cut only where the data says (a count of images and faces, never a clock), so a
bundle that a cluster runner retries cuts the same pieces under the same names.

`stop_all` (Ctrl-C, SIGTERM) commits what the workers of this process have finished before
the run stops. A local worker process whose launcher died (kill -9) exits at once and commits
nothing more: an orphan still committing while the next run plans would record files twice.
"""

from __future__ import annotations

import os
import threading
import time
import weakref

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from fer_mine.defaults import COMMIT_FACES
from fer_mine.pipeline.steps import Unit
from fer_mine.records import pieces
from fer_mine.records.schema import SCHEMAS

_LIVE: weakref.WeakSet = weakref.WeakSet()  # this process's commit steps, for `stop_all`
_STOPPING = threading.Event()


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (Linux); None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _ancestors() -> list[int]:
    pids, pid = [], os.getpid()
    while pid > 1 and (fields := _stat(pid)):
        pid = int(fields[1])  # the parent
        pids.append(pid)
    return pids


def _started(pid: int) -> str | None:
    """A live process's start time (so that a reused pid is not taken for it); None once it died."""
    fields = _stat(pid)
    return fields[19] if fields and fields[0] not in ("Z", "X") else None


def _exit_with_launcher(launcher: int, started: str) -> None:
    while _started(launcher) == started:
        time.sleep(0.2)
    os._exit(1)


class CommitPieces(beam.DoFn):
    def __init__(
        self, output: str, run_id: str, commit_every: int, launcher: int, commit_faces: int = COMMIT_FACES
    ) -> None:
        self.output, self.run_id, self.launcher = output, run_id, launcher
        self.commit_every, self.commit_faces = commit_every, commit_faces

    def setup(self) -> None:
        # a local worker process (the launcher among its ancestors: Beam starts workers through a
        # shell) follows the launcher out; workers on other machines are not its descendants, and
        # their runner retires them
        self.started = _started(self.launcher)
        self.local_child = os.getpid() != self.launcher and self.launcher in _ancestors()
        if self.local_child:
            threading.Thread(
                target=_exit_with_launcher, args=(self.launcher, self.started), daemon=True
            ).start()
        self.lock = threading.Lock()
        self.open: dict[str, dict[str, list[dict]]] = {}  # file uri -> rows so far (a video in progress)
        self.done: dict[str, dict[str, list[dict]]] = {}  # finished files, not yet committed
        self.images = self.faces = 0
        self.counters = {t: Metrics.counter("fer-mine-commit", t) for t in pieces.PIECE_TABLES}
        _LIVE.add(self)

    def process(self, unit: Unit):  # outputs nothing: its work is the commit
        if _STOPPING.is_set():  # the run is stopping: what was finished is committed, nothing more
            return
        with self.lock:
            uri = unit.file.uri
            rows = self.open.setdefault(uri, {})
            for table, new in unit.rows.items():
                rows.setdefault(table, []).extend(new)
            self.images += unit.images()
            self.faces += len(unit.rows.get("faces", ()))
            if unit.last:
                self.done[uri] = self.open.pop(uri)
                if self.images >= self.commit_every or self.faces >= self.commit_faces:
                    self._commit()

    def commit_finished(self) -> None:
        with self.lock:
            self._commit()

    finish_bundle = commit_finished

    def _commit(self) -> None:
        """The finished files' rows as one piece (called with the lock held)."""
        if not self.done:
            return
        if self.local_child and _started(self.launcher) != self.started:
            os._exit(1)  # the launcher died: the next run may be planning already
        tables = {}
        for table in pieces.PIECE_TABLES:
            rows = [row for file_rows in self.done.values() for row in file_rows.get(table, ())]
            if rows:
                tables[table] = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
                self.counters[table].inc(len(rows))
        pieces.write_piece(self.output, pieces.piece_id(self.run_id, self.done), tables)
        self.done = {}
        # what is still open (a video's frames) counts towards the next piece
        self.images = sum(len(r.get("images", ())) for r in self.open.values())
        self.faces = sum(len(r.get("faces", ())) for r in self.open.values())


def stop_all() -> None:
    """Every commit step of this process commits the files it finished, then refuses more."""
    _STOPPING.set()
    for step in list(_LIVE):
        step.commit_finished()


def reset() -> None:
    """A new run in this process starts unstopped."""
    _STOPPING.clear()
