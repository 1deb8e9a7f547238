"""Faces into people: agglomerative clustering of face embeddings (scikit-learn), and new faces
joined to the people already known, so that ids (and the names given to them) stay.

The linkage and distance were chosen on identity-labelled faces (`benchmarks/people_quality`:
AT&T's faces of people s1-s20, then measured on s21-s40; docs/benchmarks.md, People).
"""

from __future__ import annotations

import numpy as np

from fer_mine.errors import FerMineError

# Average linkage: two groups are one person when their faces lie this close on average
# (Euclidean, dlib's embedding); chosen on s1-s20 of the AT&T faces (adjusted Rand index 1.000)
LINKAGE = "average"
PERSON_DISTANCE = 0.55
# Video tracks: a face continues one in the frame before when their boxes overlap this much
# (intersection over union) and their embeddings agree
TRACK_OVERLAP = 0.3
# `people split`: a person's faces grouped again this much closer (dlib's same-person pairs on
# AT&T's faces lie 0.32 apart on average, different people 0.76)
SPLIT_DISTANCE = 0.4


def check_people_extra() -> None:
    """Grouping faces into people needs scikit-learn: one line, not a traceback, when it is absent."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise FerMineError("--people needs scikit-learn: pip install 'fer-mine[people]'") from None


def cluster(embeddings: np.ndarray, distance: float = PERSON_DISTANCE, linkage: str = LINKAGE) -> np.ndarray:
    """A group number per embedding (0, 1, ...): faces closer than `distance` by `linkage`."""
    if len(embeddings) < 2:
        return np.zeros(len(embeddings), np.int64)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, linkage=linkage)
    return model.fit_predict(embeddings).astype(np.int64)


def join_known(
    embeddings: np.ndarray, known: np.ndarray, known_people: np.ndarray, distance: float = PERSON_DISTANCE
) -> np.ndarray:
    """For each new embedding, the known person whose faces lie closest on average (the same
    rule as `cluster`'s average linkage), if within `distance`; else -1."""
    people = np.unique(known_people)
    if not len(embeddings) or not len(people):
        return np.full(len(embeddings), -1, np.int64)
    gaps = np.linalg.norm(embeddings[:, None, :] - known[None, :, :], axis=2)
    mean_gap = np.stack([gaps[:, known_people == p].mean(axis=1) for p in people], axis=1)
    best = mean_gap.argmin(axis=1)
    return np.where(mean_gap[np.arange(len(embeddings)), best] < distance, people[best], -1)


def tracks(
    frames: list[list[tuple]], min_overlap: float = TRACK_OVERLAP, distance: float = PERSON_DISTANCE
) -> list[list]:
    """Faces of one video linked across consecutive sampled frames: `frames` holds, per frame in
    order, its faces as (key, box (x, y, w, h), embedding or None). A face continues the face of
    the frame before whose box overlaps it most (intersection over union at least `min_overlap`)
    when their embeddings, where both have one, lie closer than `distance`. Returns the tracks
    as lists of keys, each in frame order."""
    from fer_mine.media.detect import iou

    track_of: dict = {}
    members: list[list] = []
    previous: list[tuple] = []
    for faces in frames:
        taken: set = set()
        for key, box, vector in faces:
            best, best_overlap = None, min_overlap
            for old_key, old_box, old_vector in previous:
                overlap = iou(box, old_box)
                close = vector is None or old_vector is None or np.linalg.norm(vector - old_vector) < distance
                if old_key not in taken and close and overlap >= best_overlap:
                    best, best_overlap = old_key, overlap
            if best is None:
                track_of[key] = len(members)
                members.append([key])
            else:
                taken.add(best)
                track_of[key] = track_of[best]
                members[track_of[key]].append(key)
        previous = faces
    return members


def pair_scores(truth: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Pairwise precision and recall of a grouping (pairs put together that belong together) and
    the adjusted Rand index."""
    from sklearn.metrics import adjusted_rand_score

    upper = np.triu_indices(len(truth), 1)
    same = (truth[:, None] == truth[None, :])[upper]
    together = (groups[:, None] == groups[None, :])[upper]
    both = float(np.sum(same & together))
    return {
        "pair_precision": both / max(1.0, float(together.sum())),
        "pair_recall": both / max(1.0, float(same.sum())),
        "ari": float(adjusted_rand_score(truth, groups)),
        "people": len(np.unique(truth)),
        "groups": len(np.unique(groups)),
    }
