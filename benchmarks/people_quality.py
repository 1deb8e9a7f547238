"""How well faces are told apart and grouped into people, and what an embedding costs.

    python -m benchmarks.people_quality [--data-root ../shared/data]

AT&T's faces (`att_faces`: 40 people x 10 photos, 92x112 gray, lighting, expression, glasses and
slight turns vary): each photo through YuNet (its largest face), the chip aligned from the five
landmarks, dlib's ResNet (`people/`). The clustering's linkage and distance are chosen on people
s1-s20 (adjusted Rand index) and measured on s21-s40: pairwise precision and recall, ARI, and
verification (same person or not, over every pair) at the chosen distance and at dlib's 0.6.
Then the incremental rule: s21-s40's photos 1-5 clustered, photos 6-10 joined to them. Then
how small a face may be: each photo shrunk until its face is N pixels wide, and how often its
embedding still lies nearest to its own person's other photos. Cost per face on this machine.
Skips with a message when att_faces is absent (a fresh machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy import DEFAULT_ROOT
from fer_mine.media.detect import DetectorSettings, FaceDetector
from fer_mine.media.quality import head_pose
from fer_mine.people.cluster import cluster, join_known, pair_scores
from fer_mine.people.embed import SAME_PERSON, embed, face_chip, load_embedder

LINKAGES = ("average", "complete", "single")
DISTANCES = tuple(round(0.30 + 0.05 * i, 2) for i in range(11))
WIDTHS = (16, 20, 24, 32, 40, 60)


def load(root: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Photos (BGR), person numbers and photo numbers, s1 first."""
    photos, people, numbers = [], [], []
    for folder in sorted(root.glob("s*"), key=lambda p: int(p.name[1:])):
        for path in sorted(folder.glob("*.pgm"), key=lambda p: int(p.stem)):
            photos.append(cv2.imread(str(path)))
            people.append(int(folder.name[1:]))
            numbers.append(int(path.stem))
    return photos, np.array(people), np.array(numbers)


def verification(embeddings: np.ndarray, people: np.ndarray, distance: float) -> dict[str, float]:
    """Over every pair: the share told right (same person or not) at `distance`, the share of
    same-person pairs found and of different people merged, and each kind's mean distance."""
    upper = np.triu_indices(len(people), 1)
    same = (people[:, None] == people[None, :])[upper]
    gaps = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=2)[upper]
    close = gaps < distance
    return {"accuracy": float((close == same).mean()), "same_found": float(close[same].mean()),
            "different_merged": float(close[~same].mean()), "same_mean": float(gaps[same].mean()),
            "different_mean": float(gaps[~same].mean())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    root = args.data_root / "att_faces"
    if not root.is_dir():
        print(f"skipped: no att_faces under {args.data_root} (pass --data-root)")
        return
    console = Console(width=140)
    detector, model = FaceDetector(DetectorSettings()), load_embedder()
    photos, people, numbers = load(root)

    start = time.perf_counter()
    faces = [max(detector.detect(p), key=lambda f: f.w * f.h) for p in photos]
    detect_ms = 1000 * (time.perf_counter() - start) / len(photos)
    start = time.perf_counter()
    chips = np.stack([face_chip(p, f.landmarks) for p, f in zip(photos, faces, strict=True)])
    chip_ms = 1000 * (time.perf_counter() - start) / len(photos)
    embed(chips[:8], model)  # warm-up
    start = time.perf_counter()
    embeddings = embed(chips, model)
    embed_ms = 1000 * (time.perf_counter() - start) / len(photos)
    yaws = [abs(head_pose(f.landmarks)[0]) for f in faces]
    console.print(f"{len(photos)} photos, faces {min(f.w for f in faces)}-{max(f.w for f in faces)} px wide, "
                  f"|yaw| up to {max(yaws):.0f} degrees (median {np.median(yaws):.0f}); per face on "
                  f"{torch.get_num_threads()} threads: detect {detect_ms:.1f} ms, chip {chip_ms:.2f} ms, "
                  f"embedding {embed_ms:.1f} ms (batch 64)")  # fmt: skip

    choose, report = people <= 20, people > 20
    grid = Table("linkage", *map(str, DISTANCES), title="choosing on s1-s20: adjusted Rand index by distance")
    scored = []
    for linkage in LINKAGES:
        row = []
        for distance in DISTANCES:
            ari = pair_scores(people[choose], cluster(embeddings[choose], distance, linkage))["ari"]
            # ties (to 3 decimals) go to the smaller distance: splitting a person is a smaller harm
            # than merging two (a name, a forget, a report would then cover someone else)
            scored.append((round(ari, 3), -distance, -LINKAGES.index(linkage), linkage, distance))
            row.append(f"{ari:.3f}")
        grid.add_row(linkage, *row)
    console.print(grid)
    *_, linkage, distance = max(scored)
    console.print(f"chosen: {linkage} linkage at {distance} (ties: the smaller distance, then the upper row)")

    held = Table("measure (s21-s40, 200 photos)", "value", title="measured on the other 20 people")
    s = pair_scores(people[report], cluster(embeddings[report], distance, linkage))
    held.add_row("people / groups found", f"{s['people']} / {s['groups']}")
    held.add_row("pairwise precision / recall", f"{s['pair_precision']:.3f} / {s['pair_recall']:.3f}")
    held.add_row("adjusted Rand index", f"{s['ari']:.3f}")
    for d in (distance, SAME_PERSON):
        v = verification(embeddings[report], people[report], d)
        held.add_row(f"verification at {d}: accuracy (same found, different merged)",
                     f"{v['accuracy']:.4f} ({v['same_found']:.3f}, {v['different_merged']:.4f})")  # fmt: skip
    first = report & (numbers <= 5)
    later = report & (numbers > 5)
    groups = cluster(embeddings[first], distance, linkage)
    joined = join_known(embeddings[later], embeddings[first], groups, distance)
    # a later photo is placed right when it joins the group most of its person's first photos are in
    majority = {p: np.bincount(groups[people[first] == p]).argmax() for p in np.unique(people[first])}
    right = np.array([j == majority[p] for j, p in zip(joined, people[later], strict=True)])
    held.add_row("incremental: photos 6-10 joined to their person's group (photos 1-5 clustered)",
                 f"{right.mean():.1%} ({int((joined == -1).sum())} made new people)")  # fmt: skip
    console.print(held)

    small = Table(
        "face width (px)", "nearest photo is the same person", title="how small a face may be (all 400)"
    )
    for width in WIDTHS:
        shrunk = []
        for photo, face in zip(photos, faces, strict=True):
            factor = width / face.w
            tiny = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            points = tuple(v * factor for v in face.landmarks)
            shrunk.append(face_chip(tiny, points))
        e = embed(np.stack(shrunk), model)
        gaps = np.linalg.norm(e[:, None] - embeddings[None], axis=2)
        gaps[np.arange(len(e)), np.arange(len(e))] = np.inf  # not its own full-size photo
        small.add_row(str(width), f"{(people[gaps.argmin(axis=1)] == people).mean():.1%}")
    console.print(small)


if __name__ == "__main__":
    main()
