"""Telling people apart: dlib's network re-implemented in PyTorch, chips aligned from YuNet's
landmarks, and faces grouped into people (photos built from scikit-image's public-domain faces)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_video import SIZE, write_video

from benchmarks.scenes import portrait
from fer_mine.cli import main
from fer_mine.errors import FerMineError
from fer_mine.media.detect import DetectorSettings, FaceDetector
from fer_mine.people.cluster import cluster, join_known, pair_scores, tracks
from fer_mine.people.embed import (
    EMBED_MIN_FACE_PX,
    SAME_PERSON,
    TEMPLATE,
    embed,
    face_chip,
    load_embedder,
    shipped_embedder,
    similarity,
)
from fer_mine.reports.archive import Archive
from fer_mine.reports.params import ReportParams

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _faces_of(source: str, count: int) -> np.ndarray:
    """Embeddings of one person's face in `count` different photos: other sizes, framings,
    brightness, a slight tilt and JPEG, found and aligned as `run --people` does."""
    detector, model = FaceDetector(DetectorSettings()), load_embedder()
    rng = np.random.default_rng(len(source))
    chips = []
    for i in range(count):
        image = portrait(rng, int(rng.integers(160, 420)), float(rng.uniform(0.2, 0.6)), source).image
        image = cv2.convertScaleAbs(
            image, alpha=float(rng.uniform(0.7, 1.2)), beta=float(rng.uniform(-20, 30))
        )
        centre = (image.shape[1] / 2, image.shape[0] / 2)
        turn = cv2.getRotationMatrix2D(centre, float(rng.uniform(-12, 12)), 1.0)
        image = cv2.warpAffine(image, turn, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50 + 10 * i])[1], 1)
        face = max(detector.detect(image), key=lambda f: f.w * f.h)
        chips.append(face_chip(image, face.landmarks))
    return embed(np.stack(chips), model)


def test_one_person_in_several_photos_is_one_and_two_people_stay_two():
    astronaut, cameraman = _faces_of("astronaut", 4), _faces_of("camera", 3)
    within = np.linalg.norm(astronaut[:, None] - astronaut[None], axis=2)
    assert within.max() < SAME_PERSON
    assert np.linalg.norm(astronaut[:, None] - cameraman[None], axis=2).min() > SAME_PERSON
    groups = cluster(np.concatenate([astronaut, cameraman]))
    assert len(set(groups[:4])) == 1 and len(set(groups[4:])) == 1 and groups[0] != groups[4]


def test_the_cut_follows_each_archive_so_people_who_lie_closer_together_stay_apart():
    """A population whose people lie closer together (same person 0.30 apart, two people 0.50:
    a fixed cut of 0.55 makes them one) keeps its people apart; one person's faces stay one."""
    from benchmarks.people_scale import identities, vectors
    from fer_mine.people.cluster import MAX_DISTANCE, person_distance

    rng = np.random.default_rng(0)
    owner = identities(200, 20, rng)
    close = vectors(owner, rng, {}, same=0.30, other=0.50)
    assert pair_scores(owner, cluster(close, MAX_DISTANCE))["ari"] < 0.5  # the old fixed cut merges them
    assert person_distance(close) < 0.45 and pair_scores(owner, cluster(close))["ari"] > 0.9
    alone = vectors(np.zeros(30, np.int64), rng, {}, same=0.32, other=0.76)
    assert len(set(cluster(alone).tolist())) == 1
    bursts = np.repeat(alone[:3], 10, axis=0) + rng.normal(0, 0.001, (30, alone.shape[1])).astype(np.float32)
    assert len(set(cluster(bursts).tolist())) == 1  # near-identical photos do not shrink the cut to nothing


def test_chip_puts_the_landmarks_where_dlib_expects_them():
    points = np.array([[40, 52], [80, 50], [61, 75], [45, 95], [78, 93]], dtype=np.float64)
    matrix = similarity(points, TEMPLATE)
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(moved - TEMPLATE).max() < 6  # a similarity cannot fit 5 points exactly
    exact = similarity(TEMPLATE * 0.5 + 7, TEMPLATE)  # a scaled, shifted copy: fitted exactly
    assert np.allclose(exact, [[2, 0, -14], [0, 2, -14]], atol=1e-9)
    photo = np.zeros((120, 120), np.uint8)
    chip = face_chip(photo, tuple(points.ravel()))
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


def test_new_faces_join_the_people_already_known_and_strangers_do_not():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)  # people about 1.4 apart
    known = np.concatenate([c + rng.normal(0, 0.01, (5, 128)) for c in centres[:2]])
    ids = np.array([17] * 5 + [4] * 5)  # ids given earlier: they must be kept
    new = np.stack([centres[1] + rng.normal(0, 0.01, 128), centres[2], centres[0] + rng.normal(0, 0.01, 128)])
    assert join_known(new, known, ids).tolist() == [4, -1, 17]
    assert join_known(new[:0], known, ids).tolist() == []


def test_pair_scores_on_a_known_grouping():
    truth = np.array([0, 0, 0, 1, 1])
    scores = pair_scores(truth, np.array([0, 0, 1, 2, 2]))  # one face split from its person
    assert scores["pair_precision"] == 1.0 and scores["pair_recall"] == pytest.approx(2 / 4)
    assert pair_scores(truth, truth)["ari"] == 1.0


def test_damaged_embedder_weights_are_one_line(tmp_path):
    folder = tmp_path / "embedder"
    shutil.copytree(shipped_embedder(), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(FerMineError, match="sha256"):
        load_embedder(str(folder))


def _run(inputs: Path, output: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        main, ["run", "--quiet", "--input", str(inputs), "--output", str(output), *extra]
    )
    assert result.exit_code == 0, result.output


def _people_of(output: Path) -> dict[tuple, str | None]:
    result = Archive(output, ReportParams(min_quality=0.0)).query(
        "SELECT path, face_index, person_id FROM faces ORDER BY path, face_index"
    )
    return {(path, index): person for path, index, person in result.rows}


def _astronaut_faces(people: dict[tuple, str | None]) -> set:
    # the sample photos' astronaut faces are those the run found frontal: P1 in a fresh output
    return {person for key, person in people.items() if key in ASTRONAUT}


ASTRONAUT = {("album-1/photo-00000.jpg", 0), ("album-1/photo-00008.jpg", 0), ("album-1/photo-00008.jpg", 1),
             ("album-1/photo-00008.jpg", 2), ("album-2/photo-00005.jpg", 0), ("album-2/photo-00009.jpg", 0),
             ("album-4/photo-00003.jpg", 0)}  # fmt: skip
CAMERAMAN_FRONTAL = ("album-4/photo-00003.jpg", 1)  # his one face turned less than 60 degrees


def test_people_is_off_by_default_and_stores_nothing(tmp_path):
    _run(SAMPLES, tmp_path / "mined")
    assert not (tmp_path / "mined" / "embeddings").exists() and not (tmp_path / "mined" / "people").exists()
    assert set(_people_of(tmp_path / "mined").values()) == {None}


def test_run_people_gives_one_id_per_person_and_keeps_ids_and_names_when_photos_arrive(tmp_path):
    photos, output = tmp_path / "photos", tmp_path / "mined"
    shutil.copytree(SAMPLES / "album-1", photos / "album-1")
    _run(photos, output, "--people")
    before = _people_of(output)
    (astronaut,) = _astronaut_faces(before)  # one id for all her faces
    named = CliRunner().invoke(main, ["people", "name", str(output), astronaut, "Eileen"])
    assert named.exit_code == 0, named.output
    for album in ("album-2", "album-3", "album-4"):  # the other albums arrive
        shutil.copytree(SAMPLES / album, photos / album)
    _run(photos, output, "--people")
    after = _people_of(output)
    assert {k: v for k, v in after.items() if k in before} == before  # ids kept
    assert _astronaut_faces(after) == {astronaut}
    assert after[CAMERAMAN_FRONTAL] not in (None, astronaut)  # two people stay two
    profiles = [k for k in after if k not in ASTRONAUT and k != CAMERAMAN_FRONTAL]
    assert profiles and all(after[k] is None for k in profiles)  # too turned: no embedding, no id
    listed = CliRunner().invoke(main, ["people", "list", str(output)])
    assert listed.exit_code == 0 and "Eileen" in listed.output and "happy" in listed.output
    counted = CliRunner().invoke(
        main, ["query", str(output), "select person_id, count(*) AS n from faces group by 1 order by 1", "--format",
               "csv"])  # fmt: skip
    assert f"{astronaut},7" in counted.output
    archive = Archive(output, ReportParams(min_quality=0.0))
    together = archive.report("together")
    pair = dict(zip(together.columns, together.rows[0], strict=True))  # one photo holds both
    assert (pair["images"], pair["emotion_a" if pair["person_a"] == astronaut else "emotion_b"]) == (
        1,
        "happy",
    )
    page = tmp_path / "report.html"
    plain = CliRunner().invoke(main, ["report", str(output), "--html", str(page), "--min-quality", "0"])
    assert plain.exit_code == 0 and "Eileen" not in page.read_text()  # people only when asked
    alone = CliRunner().invoke(main, ["report", str(output), "--people"])
    assert alone.exit_code == 2 and "give --html too" in alone.output
    shown = CliRunner().invoke(
        main, ["report", str(output), "--html", str(page), "--min-quality", "0", "--people"]
    )
    assert shown.exit_code == 0, shown.output
    html = page.read_text()
    assert "alt='people chart'" in html and "<h3>Eileen</h3>" in html  # a section per person, by name
    trend = archive.report("person_trend")
    assert sum(r[trend.columns.index("faces")] for r in trend.rows if r[0] == astronaut) == 7
    forgot = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["people", "forget", str(output), astronaut])
    assert forgot.exit_code == 0 and str(page.resolve()) in forgot.output  # the page that shows her is named


def test_forget_removes_exactly_one_person_or_every_embedding(tmp_path):
    output = tmp_path / "mined"
    _run(SAMPLES, output, "--people")
    people = _people_of(output)
    (astronaut,) = _astronaut_faces(people)
    faces_before = Archive(output).query("SELECT count(*) FROM faces").rows
    embedded = pq.read_table(output / "embeddings").num_rows
    forgot = CliRunner().invoke(main, ["people", "forget", str(output), astronaut])
    assert forgot.exit_code == 0, forgot.output
    assert pq.read_table(output / "embeddings").num_rows == embedded - 7
    left = _people_of(output)
    assert astronaut not in left.values() and left[CAMERAMAN_FRONTAL] == people[CAMERAMAN_FRONTAL]
    assert Archive(output).query("SELECT count(*) FROM faces").rows == faces_before  # emotions stay
    assert CliRunner().invoke(main, ["people", "forget", str(output), "--all"]).exit_code == 0
    assert not (output / "embeddings").exists() and set(_people_of(output).values()) == {None}
    wrong = CliRunner().invoke(main, ["people", "forget", str(output), "P999"])
    assert wrong.exit_code == 2 and wrong.output.startswith("Error:")


def test_forgetting_lasts_until_unforget_and_no_person_id_is_given_twice(tmp_path):
    output = tmp_path / "mined"
    _run(SAMPLES, output, "--people")
    (astronaut,) = _astronaut_faces(_people_of(output))
    embedded = pq.read_table(output / "embeddings").num_rows
    assert CliRunner().invoke(main, ["people", "forget", str(output), astronaut]).exit_code == 0
    kept = pq.read_table(output / "people" / "forgotten.parquet")
    assert kept.num_rows == 7 and "embedding" not in kept.column_names  # keys only, no biometric data
    _run(SAMPLES, output, "--people")  # faces recorded without an embedding are embedded, but not hers
    _run(SAMPLES, output, "--people", "--overwrite")  # nor when everything is done again
    assert pq.read_table(output / "embeddings").num_rows == embedded - 7
    assert _astronaut_faces(_people_of(output)) == {None}
    before = set(_people_of(output).values()) - {None}
    assert CliRunner().invoke(main, ["people", "forget", str(output), "--all"]).exit_code == 0
    _run(SAMPLES, output, "--people")
    assert not (output / "embeddings").exists() or pq.read_table(output / "embeddings").num_rows == 0
    unforgot = CliRunner().invoke(main, ["people", "unforget", str(output)])
    assert unforgot.exit_code == 0 and f"{embedded} forgotten faces" in unforgot.output
    _run(SAMPLES, output, "--people")
    after = _people_of(output)
    assert pq.read_table(output / "embeddings").num_rows == embedded
    used = {int(p[1:]) for p in before | {astronaut}}
    assert all(int(p[1:]) > max(used) for p in set(after.values()) - {None})  # ids never given twice
    (again,) = _astronaut_faces(after)
    itself = CliRunner().invoke(main, ["people", "merge", str(output), again, again])
    assert itself.exit_code == 2 and "itself" in itself.output


def test_a_changed_photo_file_does_not_inherit_the_person_of_the_picture_it_replaced(tmp_path):
    """People attach to the picture's hash and the model, not the path: a file replaced by
    another picture, then recorded by another model, gets the person of the face it now holds."""
    photos, output = tmp_path / "photos", tmp_path / "mined"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for name, source in (("a", "astronaut"), ("b", "astronaut"), ("c", "camera"), ("d", "camera")):
        cv2.imwrite(
            str(photos / f"{name}.jpg"), portrait(rng, int(rng.integers(220, 320)), 0.4, source).image
        )
    _run(photos, output, "--people")
    before = {path: person for (path, _), person in _people_of(output).items()}
    assert before["a.jpg"] == before["b.jpg"] != before["c.jpg"] == before["d.jpg"]
    cv2.imwrite(str(photos / "a.jpg"), portrait(rng, 260, 0.4, "camera").image)  # another picture now
    _run(photos, output, "--people", "--model", "amacnn-fer2013-fast")
    after = {path: person for (path, _), person in _people_of(output).items()}  # the latest model's faces
    assert after["a.jpg"] == after["c.jpg"] == before["c.jpg"] and after["b.jpg"] == before["b.jpg"]


def test_every_people_command_first_deletes_embeddings_a_killed_run_left_uncommitted(tmp_path):
    output = tmp_path / "mined"
    _run(SAMPLES / "album-1", output, "--people")
    (committed,) = (output / "embeddings").glob("*.parquet")
    for command in (["list"], ["name", "P1", "Eileen"], ["cluster"]):
        left = (
            output / "embeddings" / "20261207T000000Z-dead00-pdeadbeef.parquet"
        )  # no marker: a killed run's
        shutil.copy(committed, left)
        done = CliRunner().invoke(main, ["people", command[0], str(output), *command[1:]])
        assert done.exit_code == 0, done.output
        assert not left.exists() and committed.exists()


def test_people_of_an_output_keyed_by_path_before_are_kept(tmp_path):
    """An output whose persons were keyed by (uri, frame, face) keeps its people: reports read
    them through the embeddings' picture hashes, and the next grouping rewrites them so."""
    import pyarrow as pa

    output = tmp_path / "mined"
    _run(SAMPLES / "album-1", output, "--people")
    before = _people_of(output)
    path = output / "people" / "persons.parquet"
    persons = pq.read_table(path)
    faces = pq.read_table(output / "faces", columns=["uri", "image_sha256", "frame_index", "face_index"])
    uri_of = {r["image_sha256"]: r["uri"] for r in faces.to_pylist()}
    old = pa.table({"uri": [uri_of[s] for s in persons["image_sha256"].to_pylist()],
                    "frame_index": persons["frame_index"], "face_index": persons["face_index"],
                    "person_id": persons["person_id"]}).replace_schema_metadata(persons.schema.metadata)  # fmt: skip
    pq.write_table(old, path)
    assert _people_of(output) == before
    assert CliRunner().invoke(main, ["people", "cluster", str(output)]).exit_code == 0
    assert "image_sha256" in pq.read_schema(path).names and _people_of(output) == before


def test_a_tiny_face_gets_no_embedding_and_no_error(tmp_path):
    scene = portrait(np.random.default_rng(0), 300, 0.3, "astronaut").image
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "big.jpg"), scene)
    small = cv2.resize(scene, None, fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 120, np.uint8)
    canvas[100 : 100 + small.shape[0], 150 : 150 + small.shape[1]] = small
    cv2.imwrite(str(photos / "tiny.png"), canvas)
    _run(photos, tmp_path / "mined", "--people")
    faces = (
        Archive(tmp_path / "mined", ReportParams(min_quality=0.0))
        .query("SELECT path, face_px, person_id FROM faces ORDER BY path")
        .rows
    )
    embedded = {path for path, _, person in faces if person is not None}
    assert embedded == {"big.jpg"}
    assert all(px < EMBED_MIN_FACE_PX for path, px, _ in faces if path == "tiny.png")


def test_merge_and_split_mend_the_grouping(tmp_path):
    output = tmp_path / "mined"
    _run(SAMPLES, output, "--people")
    people = _people_of(output)
    (astronaut,) = _astronaut_faces(people)
    cameraman = people[CAMERAMAN_FRONTAL]
    assert CliRunner().invoke(main, ["people", "name", str(output), cameraman, "Lav"]).exit_code == 0
    merged = CliRunner().invoke(main, ["people", "merge", str(output), astronaut, cameraman])
    assert merged.exit_code == 0, merged.output
    together = _people_of(output)
    assert together[CAMERAMAN_FRONTAL] == astronaut and _astronaut_faces(together) == {astronaut}
    split = CliRunner().invoke(main, ["people", "split", str(output), astronaut])
    assert split.exit_code == 0, split.output
    apart = _people_of(output)
    assert _astronaut_faces(apart) == {astronaut}  # the larger group keeps the id
    assert apart[CAMERAMAN_FRONTAL] not in (None, astronaut)
    listed = CliRunner().invoke(main, ["people", "list", str(output)])
    assert "Lav" in listed.output  # the merged-in name went to the kept person


def test_a_video_track_is_one_person_even_where_an_embedding_is_missing_or_wrong():
    a, b = np.zeros(128), np.zeros(128)
    b[0] = 1.0  # another person, 1.0 away
    frames = [
        [("f0", (100, 100, 50, 60), a), ("g0", (300, 100, 50, 60), b)],
        [("f1", (104, 102, 50, 60), None), ("g1", (296, 98, 50, 60), b)],  # f turned: no embedding
        [("f2", (108, 104, 52, 62), a + 0.01), ("g2", (292, 96, 50, 60), b)],
        [("h3", (110, 104, 52, 62), b)],  # same place, another face: a new track
    ]
    assert tracks(frames) == [["f0", "f1", "f2"], ["g0", "g1", "g2"], ["h3"]]
    assert tracks([[("x", (0, 0, 10, 10), a)], [("y", (50, 50, 10, 10), a)]]) == [["x"], ["y"]]  # no overlap


def test_run_people_on_a_video_gives_its_face_one_person_across_frames(tmp_path):
    face = portrait(np.random.default_rng(1), 200, 0.4, "astronaut").image
    frames = []
    for step in range(8):  # the face drifts to the right, one sampled frame per second
        frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        x = 100 + 12 * step
        frame[120 : 120 + face.shape[0], x : x + face.shape[1]] = face
        frames.append(frame)
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "walk.mp4", frames, 1)
    _run(tmp_path / "clips", tmp_path / "mined", "--people")
    people = (
        Archive(tmp_path / "mined", ReportParams(min_quality=0.0))
        .query("SELECT frame_index, person_id FROM faces ORDER BY frame_index")
        .rows
    )
    assert len(people) == 8 and len({p for _, p in people}) == 1 and people[0][1] is not None
    # `people list` counts a video's frames and videos, not photos, and says when in it they were seen
    result = Archive(tmp_path / "mined", ReportParams(min_quality=0.0)).report("people")
    (row,) = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert (row["photos"], row["frames"], row["videos"]) == (0, 8, 1)
    assert (row["first_in_video_s"], row["last_in_video_s"]) == (0.0, 7.0)
    listed = CliRunner().invoke(main, ["people", "list", str(tmp_path / "mined")])
    assert listed.exit_code == 0 and "video" in listed.output


def test_run_people_over_an_output_mined_without_it_embeds_its_recorded_faces(tmp_path):
    """The faces stay as they were (not detected or classified again); each gets the embedding
    and the person a fresh `run --people` would give it, photos and video frames alike."""
    photos = tmp_path / "photos"
    shutil.copytree(SAMPLES / "album-1", photos / "album-1")
    shutil.copytree(SAMPLES / "album-4", photos / "album-4")
    face = portrait(np.random.default_rng(1), 200, 0.4, "astronaut").image
    frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
    frame[120 : 120 + face.shape[0], 100 : 100 + face.shape[1]] = face
    (photos / "clips").mkdir()
    write_video(photos / "clips" / "still.mp4", [frame] * 3, 1)
    fresh, later = tmp_path / "fresh", tmp_path / "later"
    _run(photos, fresh, "--people")
    _run(photos, later)
    faces_before = pq.read_table(later / "faces").sort_by([("uri", "ascending"), ("face_index", "ascending")])
    _run(photos, later, "--people")
    faces_after = pq.read_table(later / "faces").sort_by([("uri", "ascending"), ("face_index", "ascending")])
    assert faces_after.equals(faces_before)  # no face added, none classified again
    keys = ["uri", "frame_index", "face_index"]

    def embedded_in(output: Path) -> set[tuple]:
        return {tuple(r.values()) for r in pq.read_table(output / "embeddings", columns=keys).to_pylist()}

    embedded = embedded_in(later)
    assert embedded == embedded_in(fresh)
    assert len(embedded) == 3 + sum(k in ASTRONAUT or k == CAMERAMAN_FRONTAL for k in _people_of(fresh))

    def grouping(output: Path) -> set[frozenset]:
        people = Archive(output, ReportParams(min_quality=0.0)).query(
            "SELECT uri, frame_index, face_index, person_id FROM faces WHERE person_id IS NOT NULL"
        )
        groups: dict[str, set] = {}
        for *key, person in people.rows:
            groups.setdefault(person, set()).add((key[0].rsplit("/", 3)[-1], *key[1:]))
        return {frozenset(g) for g in groups.values()}

    assert grouping(later) == grouping(fresh)
    again = CliRunner().invoke(main, ["run", "--input", str(photos), "--output", str(later), "--people"])
    assert again.exit_code == 0 and "0 new face embeddings" in again.output


def test_grouping_at_scale_is_the_exact_grouping_and_grows_near_linearly(monkeypatch):
    """Past EXACT_FACES the grouping splits faces into chained parts through a vector index and
    runs average linkage in each: the same groups as over every pair, and memory that grows
    with the faces, not their square (benchmarks/people_scale.py at 200,000 faces)."""
    import tracemalloc

    from benchmarks.people_scale import identities, vectors
    from fer_mine.people import cluster as grouping

    rng = np.random.default_rng(0)
    owner = identities(2200, 20, rng)
    faces = vectors(owner, rng, {})
    exact = grouping.cluster(faces[:2000])
    joined = join_known(faces[2000:], faces[:2000], exact)
    assert (joined >= 0).mean() > 0.8  # most later faces are of people already known
    monkeypatch.setattr(grouping, "EXACT_FACES", 1000)  # parts of a few dozen: each exact
    assert pair_scores(exact, grouping.cluster(faces[:2000]))["ari"] == 1.0
    assert join_known(faces[2000:], faces[:2000], exact).tolist() == joined.tolist()  # through centroids

    peaks = []
    for n in (2000, 8000):
        more = vectors(identities(n, 20, rng), rng, {})
        tracemalloc.start()
        grouping.cluster(more)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] <= 5 * peaks[0]  # every pair would be 16x
