"""People in an output: faces with embeddings (`run --people`) grouped into persons whose ids
stay when new photos arrive, names given to them, and forgetting (embeddings are biometric data).

`people/persons.parquet` maps each embedded face (the picture's sha256, frame index, face index
and the emotion model whose run found it: never the path, so a changed file or another model's
faces cannot inherit a person) to a person id; `people/names.parquet` maps person ids to
names. Both are small and rewritten whole; the embeddings stay in their own table
(`embeddings/`), never in `faces`.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fer_mine.errors import FerMineError
from fer_mine.people.cluster import (
    SPLIT_SHARE,
    check_people_extra,
    cluster,
    join_known,
    person_distance,
    tracks,
)
from fer_mine.records import pieces, store
from fer_mine.records.schema import (
    EMBEDDING_SIZE,
    FORGOTTEN,
    LANDMARK_COLUMNS,
    NAMES,
    PEOPLE_FOLDER,
    PERSONS,
    check_table_file,
)

KEY = ("image_sha256", "frame_index", "face_index", "model_sha256")
JOIN_KEY = ["image_sha256", "frame_key", "face_index", "model_sha256"]  # -1 for a photo's null frame index


def people_file(output: str, table: str) -> str:
    """Where the `persons`, `names` or `forgotten` table of an output lives (a path or a bucket URI)."""
    return store.join(output, PEOPLE_FOLDER, f"{table}.parquet")


FORGOTTEN_KEY = ["image_sha256", "frame_key", "face_index"]


def _pages_file(output: str) -> str:
    return store.join(output, PEOPLE_FOLDER, "pages.json")


def pages(output: str) -> list[str]:
    """The HTML pages `report --html` wrote with people on them (their paths, as written)."""
    path = _pages_file(output)
    return json.loads(store.read_text(path)) if store.is_file(path) else []


def record_page(output: str, page: str) -> None:
    """Remember an HTML page that shows people, so that `forget` can name it: a page is a copy
    of names and faces that no command reaches once written."""
    known = pages(output)
    if page not in known:
        store.write_text(json.dumps([*known, page], indent=1), _pages_file(output))


def forgotten(output: str) -> tuple[pa.Table, int]:
    """The forgotten faces' keys (FORGOTTEN_KEY columns), and the last person id ever issued."""
    table = _read(people_file(output, "forgotten"), "forgotten", FORGOTTEN)
    last = int((table.schema.metadata or {}).get(b"last_person", b"0"))
    keyed = table.append_column("frame_key", pc.fill_null(table["frame_index"], -1))
    return keyed.select(FORGOTTEN_KEY).replace_schema_metadata(None), last


def forgotten_keys(output: str) -> frozenset[tuple]:
    """(image sha256, frame index or -1, face index) of every forgotten face: what `run` never embeds."""
    table, _ = forgotten(output)
    return frozenset(zip(*(table[c].to_pylist() for c in FORGOTTEN_KEY), strict=True))


def _write_forgotten(output: str, keys: pa.Table, last_person: int) -> None:
    """`keys`: FORGOTTEN_KEY columns, deduplicated here."""
    unique = keys.group_by(FORGOTTEN_KEY).aggregate([])
    frames = pc.if_else(pc.equal(unique["frame_key"], -1), pa.scalar(None, pa.int64()), unique["frame_key"])
    table = pa.table({"image_sha256": unique["image_sha256"], "frame_index": frames,
                      "face_index": unique["face_index"].cast(pa.int32())})  # fmt: skip
    schema = FORGOTTEN.with_metadata({**FORGOTTEN.metadata, b"last_person": str(last_person).encode()})
    store.write_table(table.cast(schema), people_file(output, "forgotten"))


def _issue(output: str, assigned: dict[tuple, str]) -> None:
    """Record the highest person id given, so that no id is ever given twice."""
    keys, last = forgotten(output)
    highest = max((_number(p) for p in assigned.values()), default=0)
    if highest > last:
        _write_forgotten(output, keys, highest)


def _next_id(output: str, assigned: dict[tuple, str]) -> int:
    return max(max((_number(p) for p in assigned.values()), default=0), forgotten(output)[1]) + 1


def _in_order(keys) -> list[tuple]:
    """Face keys by picture, frame (photos first), face and model."""
    return sorted(keys, key=lambda k: (k[0], -1 if k[1] is None else k[1], k[2], k[3]))


def _tables(output: str, table: str) -> list[str]:
    """The Parquet files of one of the output's tables (a folder or a bucket), refusing an output
    that holds none: a mistyped path is one line, not an empty answer."""
    files = pieces.table_files(output, ("images", table))
    if not files["images"]:
        raise FerMineError(f"{output} holds no fer-mine tables (run `fer-mine run --output {output}` first)")
    return files[table]


def _read(path: str, table: str, schema: pa.Schema) -> pa.Table:
    if not store.is_file(path):
        return schema.empty_table()
    check_table_file(path, table)
    return store.read_table(path)


def embeddings(output: str) -> tuple[list[tuple], np.ndarray]:
    """Every embedded face of the output, one row per face (the latest run's where several
    runs embedded it): its key and its embedding. Deduplicated in Arrow, the vectors one numpy
    array: millions of faces never become Python lists of floats."""
    parts = []
    for path in _tables(output, "embeddings"):
        check_table_file(path, "embeddings")
        parts.append(
            store.read_table(path, [*KEY, "embedding", "processed_at"]).replace_schema_metadata(None)
        )
    if not parts:
        return [], np.zeros((0, EMBEDDING_SIZE), np.float32)
    table = pa.concat_tables(parts)
    table = table.append_column("frame_key", pc.fill_null(table["frame_index"], -1))
    # the latest row of each face (a copy of a picture elsewhere is the same face): the first of its key
    table = table.sort_by([*((c, "ascending") for c in JOIN_KEY), ("processed_at", "descending")])
    columns = [table[c].to_numpy(zero_copy_only=False) for c in JOIN_KEY]
    first = np.ones(table.num_rows, bool)
    first[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in columns])
    chosen = table.filter(pa.array(first))
    vectors = chosen["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    keys = list(zip(*(chosen[c].to_pylist() for c in KEY), strict=True))
    return keys, vectors.astype(np.float32).reshape(len(keys), EMBEDDING_SIZE)


def unembedded(output: str, model_sha: str) -> dict[str, tuple[float | None, list[dict]]]:
    """Faces this model recorded that could have an embedding and have none (runs without
    --people), by file: {uri: (the video's sample fps or None, [face])}, each face its key,
    image sha256 and landmarks. A local folder or a bucket."""
    from fer_mine.media.detect import Face  # OpenCV and torch: not for `people list`
    from fer_mine.people.embed import embeddable

    # keys matched by an Arrow join, not a Python loop: an output mined with --people holds up to
    # millions of faces that need no look. Photos have no frame index and a join matches no nulls,
    # so -1 stands for it.
    def keyed(table: pa.Table) -> pa.Table:
        return table.append_column("frame_key", pc.fill_null(table["frame_index"], -1))

    done = []
    files = pieces.table_files(output, ("embeddings", "faces", "videos"))
    for path in files["embeddings"]:
        check_table_file(path, "embeddings")
        done.append(keyed(store.read_table(path, list(KEY))).select(JOIN_KEY).replace_schema_metadata(None))
    embedded = pa.concat_tables(done) if done else None
    gone, _ = forgotten(output)
    columns = ["uri", *KEY, "box_w", "box_h", "yaw_deg", *LANDMARK_COLUMNS]
    mine = (pc.field("model_sha256") == model_sha) & pc.field(LANDMARK_COLUMNS[0]).is_valid()
    wanted: dict[str, list[dict]] = {}
    for path in files["faces"]:
        faces = keyed(store.read_table(path, columns).filter(mine))
        if embedded is not None:
            faces = faces.join(embedded, JOIN_KEY, join_type="left anti")
        if gone.num_rows:  # forgotten faces are never embedded again
            faces = faces.join(gone, FORGOTTEN_KEY, join_type="left anti")
        for row in faces.to_pylist():
            landmarks = tuple(row[c] for c in LANDMARK_COLUMNS)
            if embeddable(Face(0, 0, row["box_w"], row["box_h"], None, landmarks), row["yaw_deg"]):
                wanted.setdefault(row["uri"], []).append(
                    {"image_sha256": row["image_sha256"], "frame_index": row["frame_index"],
                     "face_index": row["face_index"], "landmarks": landmarks}
                )  # fmt: skip
    fps: dict[str, float] = {}
    for path in files["videos"]:
        rows = store.read_table(path, ["uri", "sample_fps", "model_sha256"]).to_pylist()
        fps.update((r["uri"], r["sample_fps"]) for r in rows if r["model_sha256"] == model_sha)
    return {uri: (fps.get(uri), faces) for uri, faces in wanted.items()}


def persons_table(output: str) -> pa.Table:
    """The persons table (PERSONS), empty when no run grouped people."""
    path = people_file(output, "persons")
    if not store.is_file(path):
        return PERSONS.empty_table()
    check_table_file(path, "persons")
    table = store.read_table(path)
    if "uri" in table.column_names:  # written before persons were keyed by picture: keyed now
        table = _keyed_by_picture(output, table)
    return table


def persons(output: str) -> dict[tuple, str]:
    """{face key (KEY): person id}."""
    table = persons_table(output)
    keys = zip(*(table[c].to_pylist() for c in KEY), strict=True)
    return dict(zip(keys, table["person_id"].to_pylist(), strict=True))


def _keyed_by_picture(output: str, table: pa.Table) -> pa.Table:
    """Persons keyed by (uri, frame_index, face_index), as written before, given the picture's
    sha256 and the model of the embedding recorded at that key (the next write keeps them so)."""
    paths = _tables(output, "embeddings")
    found = [store.read_table(p, ["uri", *KEY]).replace_schema_metadata(None) for p in paths]
    if not found:
        return PERSONS.empty_table()
    old = ["uri", "frame_key", "face_index"]
    known = pa.concat_tables(found)
    known = known.append_column("frame_key", pc.fill_null(known["frame_index"], -1)).drop_columns(
        "frame_index"
    )
    table = table.append_column("frame_key", pc.fill_null(table["frame_index"], -1))
    table = table.select([*old, "frame_index", "person_id"]).join(
        known.select([*old, "image_sha256", "model_sha256"]), old
    )
    table = table.group_by(list(KEY), use_threads=False).aggregate([("person_id", "first")])
    return table.rename_columns({"person_id_first": "person_id"}).select([*KEY, "person_id"]).cast(PERSONS)


def names(output: str) -> dict[str, str]:
    return {
        r["person_id"]: r["name"] for r in _read(people_file(output, "names"), "names", NAMES).to_pylist()
    }


def _number(person_id: str) -> int:
    return int(person_id[1:])


def assign_people(output: str) -> dict[str, int | float]:
    """Give every embedded face a person: a new face joins the nearest known person when close
    enough; the rest are clustered among themselves into new persons. Known faces keep theirs.
    How close is this archive's own cut (`person_distance`), measured over all its faces."""
    check_people_extra()
    keys, vectors = embeddings(output)
    distance = person_distance(vectors)
    index = {k: i for i, k in enumerate(keys)}
    known = {k: p for k, p in persons(output).items() if k in index}  # forgotten faces drop out
    new = [k for k in keys if k not in known]
    if new:
        new_vectors = vectors[[index[k] for k in new]]
        known_keys = list(known)
        labels = np.array([_number(known[k]) for k in known_keys], np.int64)
        joined = join_known(new_vectors, vectors[[index[k] for k in known_keys]], labels, distance)
        for k, person in zip(new, joined, strict=True):
            if person >= 0:
                known[k] = f"P{person}"
        rest = [k for k in new if k not in known]
        next_id = _next_id(output, known)
        groups = cluster(vectors[[index[k] for k in rest]], distance)
        for k, group in zip(rest, groups, strict=True):
            known[k] = f"P{next_id + int(group)}"
    known = follow_tracks(output, known, {k: vectors[i] for k, i in index.items()})
    _write_persons(output, known)
    return {
        "faces": len(known),
        "people": len(set(known.values())),
        "new_faces": len(new),
        "distance": distance,
    }


def follow_tracks(output: str, known: dict[tuple, str], vectors: dict[tuple, np.ndarray]) -> dict[tuple, str]:
    """In each video, faces linked across consecutive sampled frames (`people.cluster.tracks`)
    are one person: the one most of the track's embedded faces were given. Faces of the track
    without an embedding (too turned, too small for one) get that person too."""
    boxes: dict[str, dict[int, list]] = {}
    for path in _tables(output, "faces"):
        table = store.read_table(path, ["uri", *KEY, "box_x", "box_y", "box_w", "box_h"])
        for row in table.filter(pc.is_valid(table["frame_index"])).to_pylist():
            # each model's faces of a video are tracked apart: they are its run's own records
            frame = boxes.setdefault((row["uri"], row["model_sha256"]), {}).setdefault(row["frame_index"], [])
            key = tuple(row[k] for k in KEY)
            if all(key != f[0] for f in frame):  # a video recorded twice by the same model
                frame.append(
                    (key, (row["box_x"], row["box_y"], row["box_w"], row["box_h"]), vectors.get(key))
                )
    sampled: dict[tuple[str, str], list[int]] = {}
    for path in _tables(output, "images"):
        table = store.read_table(path, ["uri", "frame_index", "model_sha256"])
        for row in table.filter(pc.is_valid(table["frame_index"])).to_pylist():
            sampled.setdefault((row["uri"], row["model_sha256"]), []).append(row["frame_index"])
    result = dict(known)
    for video, frames in boxes.items():
        order = sorted(set(sampled.get(video, [])) | set(frames))
        for track in tracks([frames.get(f, []) for f in order]):
            votes = [known[k] for k in track if k in known]
            if votes:
                person = max(sorted(set(votes)), key=votes.count)
                result.update(dict.fromkeys(track, person))
    return result


def name_person(output: str, person_id: str, name: str) -> None:
    _known_person(output, person_id)
    _write_names(output, names(output) | {person_id: name})


def _write_persons(output: str, assigned: dict[tuple, str]) -> None:
    order = _in_order(assigned)
    columns = {c: [k[i] for k in order] for i, c in enumerate(KEY)}
    table = pa.table({**columns, "person_id": [assigned[k] for k in order]}).cast(PERSONS)
    store.write_table(table, people_file(output, "persons"))
    _issue(output, assigned)


def _write_names(output: str, given: dict[str, str]) -> None:
    rows = [{"person_id": p, "name": n} for p, n in sorted(given.items(), key=lambda i: _number(i[0]))]
    store.write_table(pa.Table.from_pylist(rows, schema=NAMES), people_file(output, "names"))


def _known_person(output: str, person_id: str) -> dict[tuple, str]:
    assigned = persons(output)
    if person_id not in set(assigned.values()):
        raise FerMineError(f"no person {person_id} in {output} (see `fer-mine people list {output}`)")
    return assigned


def merge(output: str, keep: str, others: list[str]) -> int:
    """Make `others` one person with `keep` (the clustering split someone): their faces become
    `keep`'s, and `keep` takes the first of their names if it has none. Faces moved."""
    if keep in others:
        raise FerMineError(f"{keep} cannot be merged with itself")
    assigned = _known_person(output, keep)
    for other in others:
        _known_person(output, other)
    moved = {k: keep for k, p in assigned.items() if p in others}
    _write_persons(output, assigned | moved)
    given = names(output)
    if keep not in given and (taken := [given[o] for o in others if o in given]):
        given[keep] = taken[0]
    _write_names(output, {p: n for p, n in given.items() if p not in others})
    return len(moved)


def split(output: str, person_id: str, distance: float | None = None) -> tuple[list[str], float]:
    """Cluster one person's faces again, closer than `distance` (None: SPLIT_SHARE of the
    archive's cut) where the clustering merged two people: the largest group keeps the id (and
    name), the others become new persons. Returns the ids and the distance used."""
    assigned = _known_person(output, person_id)
    keys, vectors = embeddings(output)
    if distance is None:
        distance = round(SPLIT_SHARE * person_distance(vectors), 2)
    mine = [i for i, k in enumerate(keys) if assigned.get(k) == person_id]
    groups = cluster(vectors[mine], distance)
    largest = int(np.bincount(groups).argmax())
    next_id = _next_id(output, assigned)
    new_ids = {}
    for group in sorted(set(groups.tolist()) - {largest}):
        new_ids[group] = f"P{next_id}"
        next_id += 1
    for i, group in zip(mine, groups, strict=True):
        if group != largest:
            assigned[keys[i]] = new_ids[int(group)]
    _write_persons(output, assigned)
    return [person_id, *new_ids.values()], distance


def drop_uncommitted(output: str) -> None:
    """Delete the embeddings a run left uncommitted (biometric data no reader sees): a run that
    fails or is stopped does it as it ends, every people command first (a killed run's)."""
    pieces.drop_unmarked(output, "embeddings")


def forget(output: str, person_id: str | None) -> dict:
    """Delete one person's embeddings, assignments and name (`person_id`), or every embedding
    and everything about people (None). Their faces' keys are kept as forgotten, so that no
    later run embeds them again (`unforget` undoes it); the emotion records stay as they are.
    Returns counts, and the HTML pages written with people on them that still exist: no
    command reaches their copies of names and faces."""
    if person_id is not None and not re.fullmatch(r"P\d+", person_id):
        raise FerMineError(f"{person_id!r} is not a person id (P1, P2, ...)")
    assigned = _known_person(output, person_id) if person_id else persons(output)
    faces = {k for k, p in assigned.items() if person_id is None or p == person_id}
    keys, last = forgotten(output)
    last = max([last, *(_number(p) for p in assigned.values())])
    removed, dropped = 0, []
    for path in _tables(output, "embeddings"):
        table = store.read_table(path)
        drop = [
            person_id is None or tuple(r[k] for k in KEY) in faces
            for r in table.select(list(KEY)).to_pylist()
        ]
        if any(drop):
            removed += drop.count(True)
            gone = table.filter(pa.array(drop))
            dropped.append(gone.select(["image_sha256", "face_index"]).append_column(
                "frame_key", pc.fill_null(gone["frame_index"], -1)).select(FORGOTTEN_KEY))  # fmt: skip
            store.write_table(table.filter(pa.array([not d for d in drop])), path)
    # the keys first: a command killed after them forgets too much, never too little
    _write_forgotten(
        output, pa.concat_tables([keys.cast(dropped[0].schema), *dropped]) if dropped else keys, last
    )
    if person_id is None:
        store.delete_tree(store.join(output, "embeddings"))
        store.delete(
            [p for p in (people_file(output, "persons"), people_file(output, "names")) if store.is_file(p)]
        )
    else:
        _write_persons(output, {k: p for k, p in assigned.items() if p != person_id})
        _write_names(output, {p: n for p, n in names(output).items() if p != person_id})
    return {
        "embeddings": removed,
        "faces": len(faces),
        "pages": [p for p in pages(output) if os.path.isfile(p)],
    }


def unforget(output: str) -> int:
    """Let later `run --people` embed the forgotten faces again. Returns how many there were."""
    keys, last = forgotten(output)
    _write_forgotten(output, keys.slice(0, 0), last)
    return keys.num_rows
