"""Grouping faces into people at archive scale: time, memory and pairwise quality of exactly the
grouping `run --people` runs (records/people.py, `assign_people`), on synthetic embeddings.

    python -m benchmarks.people_scale --faces 200000 [--per-person 20] [--seed 0]
        [--same 0.32 --different 0.76]

Builds an output (a folder of committed pieces, as `run` writes them) holding N embeddings of
people of about --per-person faces each (sizes drawn from a geometric law), placed so that two
faces of one person lie 0.32 apart on average and faces of two people 0.76: the distances dlib's
network gives AT&T's faces (docs/benchmarks.md, People; --same and --different take another
population's, such as LFW's East Asian faces: 0.33 and 0.60). Then groups them all, as the first
`run --people` over an archive does, then adds 10% more faces (of the same people and of new
ones) and groups again, as the next run does: known faces keep their person, new ones join or
found persons. Prints each step's time, the process's peak memory (VmHWM) and the pairwise
precision and recall against the true identities, with the number of people found.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from benchmarks.memory import peak_rss_mb
from fer_mine.people.cluster import pair_scores
from fer_mine.records import pieces
from fer_mine.records.people import assign_people, persons
from fer_mine.records.schema import EMBEDDING_SIZE, SCHEMAS

SAME, OTHER = 0.32, 0.76  # mean distances on AT&T's faces, dlib's embedding
RUN = "20261207T000000Z-000000"


def identities(faces: int, per_person: float, rng: np.random.Generator) -> np.ndarray:
    """A person index per face: geometric sizes of mean `per_person`, in a shuffled order."""
    sizes = rng.geometric(1 / per_person, size=int(faces / per_person * 1.5) + 10)
    owner = np.repeat(np.arange(len(sizes)), sizes)[:faces]
    return rng.permutation(owner)


def vectors(
    owner: np.ndarray, rng: np.random.Generator, centres: dict, same: float = SAME, other: float = OTHER
) -> np.ndarray:
    """Faces around their person's centre: pairwise distances `same` within, `other` between."""
    within = same / np.sqrt(2 * EMBEDDING_SIZE)
    between = np.sqrt(other**2 / (2 * EMBEDDING_SIZE) - within**2)
    for person in np.unique(owner):
        if person not in centres:
            centres[person] = rng.normal(0, between, EMBEDDING_SIZE).astype(np.float32)
    faces = np.empty((len(owner), EMBEDDING_SIZE), np.float32)
    for start in range(0, len(owner), 65536):  # in float32 pieces: the benchmark's own memory stays small
        part = owner[start : start + 65536]
        noise = rng.normal(0, within, (len(part), EMBEDDING_SIZE)).astype(np.float32)
        faces[start : start + len(part)] = np.stack([centres[p] for p in part]) + noise
    return faces


def write(output: str, start: int, batch: np.ndarray, piece: str) -> None:
    now = datetime.now(timezone.utc)
    n = len(batch)
    uris = [f"/photos/p{start + i:08d}.jpg" for i in range(n)]
    embeddings = pa.table({
        "run_id": [RUN] * n, "path": uris, "uri": uris, "folder": [""] * n, "image_sha256": [f"{start + i:064x}" for i in range(n)],
        "frame_index": pa.nulls(n, pa.int64()), "face_index": pa.array(np.zeros(n, np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(batch.reshape(-1)), EMBEDDING_SIZE),
        "embedder_sha256": ["e" * 64] * n, "model_sha256": ["m" * 64] * n, "processed_at": pa.array([now] * n),
    }).cast(SCHEMAS["embeddings"])  # fmt: skip
    tables = {"embeddings": embeddings}
    if start == 0:
        tables["images"] = SCHEMAS["images"].empty_table()
    pieces.write_piece(output, f"{RUN}-{piece}", tables)
    if start == 0:  # readers need an images file to take the folder for an output
        from fer_mine.records import store

        store.write_table(
            SCHEMAS["images"].empty_table(), store.join(output, "images", f"{RUN}-{piece}.parquet")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=200_000)
    parser.add_argument("--per-person", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same", type=float, default=SAME, help="mean distance of two faces of one person")
    parser.add_argument("--different", type=float, default=OTHER, help="mean distance of two people's faces")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    more = args.faces // 10
    owner = identities(args.faces + more, args.per_person, rng)
    centres: dict = {}
    data = vectors(owner, rng, centres, args.same, args.different)
    table = Table("step", "faces", "seconds", "peak memory MB", "people found", "true people",
                  "pair precision", "pair recall",
                  title=f"grouping {args.faces:,} synthetic faces, then {more:,} more (about {args.per_person:g} a person)")  # fmt: skip
    with tempfile.TemporaryDirectory() as output:
        pieces.clean_uncommitted(output)
        for step, (start, stop) in enumerate(((0, args.faces), (args.faces, args.faces + more))):
            write(output, start, data[start:stop], f"p{step:04d}")
            began = time.perf_counter()
            counts = assign_people(output)
            seconds = time.perf_counter() - began
            given = persons(output)
            index = [int(k[0], 16) for k in given]  # each face's picture hash is its number
            groups = np.unique(list(given.values()), return_inverse=True)[1]
            scores = pair_scores(owner[index], groups)
            table.add_row("first run: every face" if step == 0 else "next run: 10% more joined",
                          f"{counts['faces']:,}", f"{seconds:.1f}", f"{peak_rss_mb():.0f}", f"{counts['people']:,}",
                          f"{scores['people']:,}", f"{scores['pair_precision']:.3f}", f"{scores['pair_recall']:.3f}")  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
