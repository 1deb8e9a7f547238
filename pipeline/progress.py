"""Live progress of a run, whatever runs it: each step counts in its own worker and writes its
counts to a small file in a folder on the launching machine, about twice a second; the
launcher sums the files. That works in-process, with `--workers` processes and with a portable
runner on this machine, where Beam itself reports metrics only when the job is done. Workers on
other machines do not see the folder and write nothing; the same counts go to Beam's metrics,
which Dataflow and Flink show in their own UIs.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

from apache_beam.metrics import Metrics

KINDS = ("files", "frames", "images", "faces", "errors")
FLUSH_S = 0.5


class ProgressReporter:
    """The counts of one DoFn instance; flushed to `<folder>/<id>.json`."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder if folder and os.path.isdir(folder) else None
        self.path = os.path.join(self.folder, f"{uuid.uuid4().hex}.json") if self.folder else None
        self.counts: Counter = Counter()
        self.metrics = {kind: Metrics.counter("fer-mine", kind) for kind in KINDS}
        self.flushed = 0.0

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n
        self.metrics[kind].inc(n)
        if self.path and time.monotonic() - self.flushed > FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self.path:
            return
        self.flushed = time.monotonic()
        temporary = f"{self.path}.tmp"
        try:
            with open(temporary, "w") as handle:
                json.dump(self.counts, handle)
            os.replace(temporary, self.path)  # the reader never sees half a file
        except OSError:
            self.path = None  # the folder went away (the run ended): stop writing


def read_progress(folder: str | Path) -> Counter:
    """The sum of every reporter's last flushed counts."""
    total: Counter = Counter()
    for path in Path(folder).glob("*.json"):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced while read: the next poll gets it
    return total
