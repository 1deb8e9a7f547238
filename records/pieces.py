"""How an output's records are committed: in pieces, while a run goes, on a folder or a bucket.

A piece holds every row of a few hundred files, in all their tables (faces, images, errors,
videos, embeddings). Its Parquet files are written under write-once names,
`<table>/<piece id>.parquet`, and the piece becomes visible when one small marker is written
last, `_commits/<piece id>.json`. Object stores have no atomic rename; a marker written after
the data is what makes one step of many files there, and the same rule serves a local folder.
Every reader (the incremental check, reports, people) takes a table's files only from visible
pieces (`table_files`), so a killed run's half-written piece is never read, and the next run
deletes it (`clean_uncommitted`) and redoes its files.

Piece ids are `<run id>-p<hash of the piece's file uris>`: a bundle a cluster runner retries
writes the same names again, so a retried piece replaces itself instead of doubling its rows.
`compact` merges many small pieces into files of a sensible size: the merged piece's marker
names the pieces it replaces, which are hidden from that moment and deleted after.

An output becomes one of pieces when a run first plans it (`clean_uncommitted` writes
`_commits/PIECES`, before any piece). Outputs without it, written before pieces (files
`<run id>-<5 digits>.parquet`, committed when the run's images landed) or by other tools, are
read by their own rule, and adopted as pieces by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable

import pyarrow as pa

from fer_mine.records import store
from fer_mine.records.schema import SCHEMAS, TABLES, check_table_file

COMMITS = "_commits"
FLAG = "PIECES"  # in COMMITS: this output is committed in pieces
STAGING = ".staging"  # where runs before pieces staged their tables; removed on sight
PIECE_TABLES = (*TABLES, "embeddings")
# a merged piece is written when the pieces it takes hold at least this much Parquet; small
# pieces are merged up to MERGED_BYTES a piece (one file per table of up to about that size)
MERGED_BYTES = 64 * 2**20
_LEGACY = re.compile(r"^(\d{8}T\d{6}Z-[0-9a-f]{6})-\d{5}$")  # `<run id>-<shard>` of older runs


def piece_id(run_id: str, uris: Iterable[str], kind: str = "p") -> str:
    """Deterministic: the same files of the same run give the same piece."""
    digest = hashlib.sha1("\n".join(sorted(uris)).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{run_id}-{kind}{digest}"


def _stem(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/")).removesuffix(".parquet").removesuffix(".json")


def write_piece(output: str, piece: str, tables: dict[str, pa.Table], replaces: Iterable[str] = ()) -> None:
    """The piece's tables, then its marker: visible whole, or (killed before the marker) not at all."""
    rows = {}
    for table, rows_of in tables.items():
        if rows_of.num_rows:
            store.write_table(rows_of, store.join(output, table, f"{piece}.parquet"))
            rows[table] = rows_of.num_rows
    marker = {"piece": piece, "rows": rows, "replaces": sorted(replaces)}
    store.write_text(json.dumps(marker), store.join(output, COMMITS, f"{piece}.json"))


def _commits(output: str) -> tuple[bool, dict[str, str]]:
    """Whether the output is of pieces (its FLAG), and its markers by piece: one listing (on a
    bucket every request counts; readers list this at each start)."""
    found = store.list_files(store.join(output, COMMITS), "")
    flagged = any(os.path.basename(path) == FLAG for path in found)
    return flagged, {_stem(path): path for path in found if path.endswith(".json")}


def visible_pieces(output: str, markers: dict[str, str] | None = None) -> set[str]:
    """Committed pieces that no merged piece replaces. Only merged pieces' markers are read (the
    listing names the rest), so a bucket of thousands of pieces costs one listing."""
    markers = _commits(output)[1] if markers is None else markers
    hidden: set[str] = set()
    for piece, path in markers.items():
        if piece.rsplit("-", 1)[-1].startswith("c"):  # a merged piece (`compact`)
            hidden.update(json.loads(store.read_text(path))["replaces"])
    return set(markers) - hidden


def _legacy_committed(images: list[str]) -> set[str]:
    """Runs before pieces committed by moving their images last: a run with an images file
    landed (`images`: the images folder's listing)."""
    runs = set()
    for path in images:
        if match := _LEGACY.match(_stem(path)):
            runs.add(match.group(1))
    return runs


def _visible(path: str, pieces: set[str] | None, legacy_runs: set[str]) -> bool:
    """`pieces` None: an output not (yet) of pieces, whose files other than older runs' all count."""
    stem = _stem(path)
    if pieces is not None and stem in pieces:
        return True
    match = _LEGACY.match(stem)
    if match:
        return match.group(1) in legacy_runs
    return pieces is None


def _scan(output: str, tables: Iterable[str]) -> tuple[bool, dict[str, list[str]], Callable[[str], bool]]:
    """One listing of the markers and of each table's folder (and images'): whether the output
    is of pieces, every file of each table, and which files a reader sees."""
    flagged, markers = _commits(output)
    pieces = visible_pieces(output, markers) if flagged else None
    listed = {t: store.list_files(store.join(output, t)) for t in dict.fromkeys([*tables, "images"])}
    legacy = _legacy_committed(listed["images"])
    return flagged, listed, lambda path: _visible(path, pieces, legacy)


def table_files(output: str, tables: Iterable[str] = PIECE_TABLES) -> dict[str, list[str]]:
    """The committed Parquet files of each table: what every reader reads."""
    _, listed, seen = _scan(output, tables)
    return {t: [p for p in listed[t] if seen(p)] for t in tables}


def clean_uncommitted(output: str) -> None:
    """Delete what no reader sees: pieces a killed run left unmarked, pieces a merge replaced,
    and what older runs left (their staging folder; files of runs whose images never landed).
    Older runs' committed files become pieces of their own (a marker per run), so that from
    then on one rule holds."""
    store.delete_tree(store.join(output, STAGING))
    flagged, markers = _commits(output)
    foreign = not flagged  # files other tools wrote there count as committed, once
    pieces = visible_pieces(output, markers)
    listed = {table: store.list_files(store.join(output, table)) for table in PIECE_TABLES}
    legacy = _legacy_committed(listed["images"])
    adopted: dict[str, dict[str, int]] = {}
    for table in PIECE_TABLES:
        dropped = []
        for path in listed[table]:
            stem = _stem(path)
            match = _LEGACY.match(stem)
            if stem in pieces:
                continue
            if (match and match.group(1) in legacy) or (foreign and not match):
                adopted.setdefault(stem, {})[table] = store.num_rows(path)
            else:
                dropped.append(path)
        store.delete(dropped)
    store.delete([path for piece, path in markers.items() if piece not in pieces])
    for stem, rows in adopted.items():
        marker = {"piece": stem, "rows": rows, "replaces": []}
        store.write_text(json.dumps(marker), store.join(output, COMMITS, f"{stem}.json"))
    if foreign:
        store.write_text(
            "fer-mine commits this output in pieces (records/pieces.py)\n", store.join(output, COMMITS, FLAG)
        )


def drop_unmarked(output: str, table: str) -> int:
    """Delete a table's files that no committed piece holds (a killed run's), at once: for
    embeddings, biometric data that no reader sees must not wait for the next run to go."""
    flagged, listed, seen = _scan(output, (table,))
    if not flagged:
        return 0
    unmarked = [p for p in listed[table] if not seen(p)]
    store.delete(unmarked)
    return len(unmarked)


def compact(output: str, merged_bytes: int = MERGED_BYTES) -> dict[str, int]:
    """Merge small committed pieces into pieces of up to `merged_bytes` of Parquet, in commit
    order; pieces already that big stay. Readers see the old pieces or the merged one, never
    both. Returns {"pieces": before, "after": after}."""
    files = table_files(output)
    sizes: dict[str, int] = {}
    paths: dict[str, dict[str, str]] = {}
    for table, found in files.items():
        for path in found:
            stem = _stem(path)
            paths.setdefault(stem, {})[table] = path
            sizes[stem] = sizes.get(stem, 0) + _size(path)
    groups, group, total = [], [], 0
    for piece in sorted(paths):
        if sizes[piece] >= merged_bytes // 2:
            continue
        group.append(piece)
        total += sizes[piece]
        if total >= merged_bytes:
            groups.append(group)
            group, total = [], 0
    groups.append(group)
    merged = 0
    for members in (g for g in groups if len(g) > 1):
        tables = {}
        for table in PIECE_TABLES:
            held = [paths[m][table] for m in members if table in paths[m]]
            for path in held:
                check_table_file(path, table)
            parts = [store.read_table(path) for path in held]
            if parts:
                tables[table] = pa.concat_tables(parts).cast(SCHEMAS[table])
        run_id = "-".join(members[0].split("-")[:2])
        write_piece(output, piece_id(run_id, members, kind="c"), tables, replaces=members)
        merged += len(members)
        store.delete([p for m in members for p in paths[m].values()])
        store.delete([store.join(output, COMMITS, f"{m}.json") for m in members])
    before = len(paths)
    return {"pieces": before, "after": before - merged + sum(1 for g in groups if len(g) > 1)}


def _size(path: str) -> int:
    if not store.is_remote(path):
        return os.path.getsize(path)
    return store.filesystems().match([path])[0].metadata_list[0].size_in_bytes
