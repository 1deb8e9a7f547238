"""Faces into people: agglomerative clustering of face embeddings (scikit-learn), and new faces
joined to the people already known, so that ids (and the names given to them) stay.

The linkage and distance were chosen on identity-labelled faces (`benchmarks/people_quality`:
AT&T's faces of people s1-s20, then measured on s21-s40; docs/benchmarks.md, People).
"""

from __future__ import annotations

import warnings

import numpy as np

from fer_mine.errors import FerMineError

# Average linkage: two groups are one person when their faces lie closer on average (Euclidean,
# dlib's embedding) than a cut taken from the archive's own distances (`person_distance`): how
# far apart people lie differs between populations (different people 0.60-0.79 apart on
# average in LFW's East Asian and Black public figures, 0.76 on AT&T's studio faces), so no one
# number holds for all. Chosen on half the people of nine populations (benchmarks/
# people_populations.py; docs/benchmarks.md, People across populations)
LINKAGE = "average"
PAIRS_SCALE = 0.78  # times the median distance of two faces drawn at random: mostly two people
NEAREST_SCALE = 1.5  # at least this times the median distance of a face to its nearest other face
# never above the cut chosen on AT&T's faces alone (a cap of 0.6 tied with it on the chosen
# half, and ties go to the smaller distance: splitting a person is the smaller harm)
MAX_DISTANCE = 0.55
# never below: just above the tightest mean distance of one person's faces measured (0.31-0.32,
# AT&T's studio faces), so that an archive of one person, or of bursts of near-identical
# photos, is not split apart around its own spread
MIN_DISTANCE = 0.35
DISTANCE_SAMPLE = 2000  # faces drawn to measure an archive's distances
PERSON_DISTANCE = MAX_DISTANCE  # AT&T's faces' cut: video tracks, and a typical archive in tests
# Video tracks: a face continues one in the frame before when their boxes overlap this much
# (intersection over union) and their embeddings agree
TRACK_OVERLAP = 0.3
# `people split`: a person's faces grouped again at this share of the archive's cut (0.4 at
# AT&T's 0.55, where one person's faces lie 0.32 apart on average and two people's 0.76)
SPLIT_SHARE = 0.73


def check_people_extra() -> None:
    """Grouping faces into people needs scikit-learn and faiss: one line, not a traceback, when
    either is absent."""
    try:
        import faiss  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise FerMineError("--people needs scikit-learn and faiss: pip install 'fer-mine[people]'") from None


# Beyond EXACT_FACES faces, grouping goes through a vector index (faiss, HNSW) instead of every
# pair. Average linkage never puts two faces in one person unless a chain of faces, each closer
# than the distance to the next, joins them; so the faces are first split into such chains'
# parts, found among each face's NEIGHBOURS nearest, and average linkage then runs, exactly, in
# each part on its own (a part too large is split by tighter chains: `_by_parts`). A new face
# is weighed against the people whose centroids lie nearest, each by at most PERSON_SAMPLE of
# their faces. Time and memory then grow with the faces times the neighbours, and with the
# square of the largest part only (benchmarks/people_scale.py)
EXACT_FACES = 5000
NEIGHBOURS = 30
PERSON_SAMPLE = 256
CANDIDATES = 10  # people whose centroids lie nearest a new face, weighed against it


def person_distance(embeddings: np.ndarray) -> float:
    """The archive's own cut between one person and two: PAIRS_SCALE times the median distance
    of two faces drawn at random (most such pairs are two people, so this follows how far
    apart people lie in this archive), but at least NEAREST_SCALE times the median distance
    of a face to its nearest other face (how far one person's faces lie: an archive of one or
    two people is not split apart), and between MIN_DISTANCE and MAX_DISTANCE."""
    return cut_between(*distance_scales(embeddings))


def cut_between(
    pairs: float,
    nearest: float,
    pairs_scale: float = PAIRS_SCALE,
    nearest_scale: float = NEAREST_SCALE,
    max_distance: float = MAX_DISTANCE,
) -> float:
    """`person_distance`'s rule, from an archive's two medians (the scales are arguments so
    that benchmarks/people_populations.py can choose them)."""
    return round(min(max_distance, max(MIN_DISTANCE, pairs_scale * pairs, nearest_scale * nearest)), 4)


def distance_scales(embeddings: np.ndarray) -> tuple[float, float]:
    """The median distance of two faces drawn at random and of a face to its nearest other
    face. Deterministic for the same faces; DISTANCE_SAMPLE faces measure them, against every
    face for their nearest (an archive of one face: 0, 0)."""
    if len(embeddings) < 2:
        return 0.0, 0.0
    vectors = np.ascontiguousarray(embeddings, np.float32)
    rng = np.random.default_rng(0)
    sample = vectors[np.sort(rng.choice(len(vectors), min(len(vectors), DISTANCE_SAMPLE), replace=False))]
    pairs = _gaps(sample, sample)[np.triu_indices(len(sample), 1)]
    nearest = np.sqrt(np.maximum(_nearest_other(sample, vectors), 0.0))
    return float(np.median(pairs)), float(np.median(nearest))


def _gaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every distance between the rows of `a` and of `b` (an a x b matrix: for small sets only)."""
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _nearest_other(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The squared distance of each query (one of `vectors`) to its nearest other vector: exact
    (faiss's brute-force search, in blocks: no queries x vectors matrix at once)."""
    import faiss

    squared, _ = faiss.knn(queries, vectors, 2)
    return squared[:, 1]


def cluster(embeddings: np.ndarray, distance: float | None = None, linkage: str = LINKAGE) -> np.ndarray:
    """A group number per embedding (0, 1, ...): faces closer than `distance` by `linkage`
    (None: the archive's own, `person_distance`)."""
    if distance is None:
        distance = person_distance(embeddings)
    if len(embeddings) <= EXACT_FACES:
        return _exact(embeddings, distance, linkage)
    return _by_parts(embeddings, distance, linkage, distance)


def _by_parts(embeddings: np.ndarray, distance: float, linkage: str, chain: float) -> np.ndarray:
    """Average linkage run in each part of faces chained closer than `chain`. A part still larger
    than EXACT_FACES (look-alike people chained through a few close faces, in a large archive) is
    split again with chains 10% tighter: faces of one person lie far closer than the distance,
    so that splits people from each other, seldom one person; down to half the distance, past
    which the part is grouped along its neighbour graph."""
    parts = _chained_parts(embeddings, chain)
    order = np.argsort(parts, kind="stable")
    bounds = np.flatnonzero(np.diff(parts[order])) + 1
    groups = np.empty(len(embeddings), np.int64)
    taken = 0
    for members in np.split(order, bounds):
        if len(members) <= EXACT_FACES:
            found = _exact(embeddings[members], distance, linkage)
        elif chain * 0.9 >= distance / 2:
            found = _by_parts(embeddings[members], distance, linkage, chain * 0.9)
        else:
            found = _exact(embeddings[members], distance, linkage, connected=True)
        groups[members] = found + taken
        taken += int(found.max()) + 1
    return groups


def _exact(embeddings: np.ndarray, distance: float, linkage: str, connected: bool = False) -> np.ndarray:
    """scikit-learn's agglomerative clustering over every pair; `connected`, for a part too large
    for every pair, along the nearest-neighbour graph only (an approximation of the linkage)."""
    if len(embeddings) < 2:
        return np.zeros(len(embeddings), np.int64)
    from sklearn.cluster import AgglomerativeClustering

    connectivity = _neighbour_graph(embeddings) if connected else None
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, linkage=linkage,
                                    connectivity=connectivity)  # fmt: skip
    with warnings.catch_warnings():  # a graph in several parts is joined up by sklearn: as wanted
        warnings.filterwarnings("ignore", message=".*connected components.*")
        return model.fit_predict(embeddings).astype(np.int64)


def _index(vectors: np.ndarray):
    """A faiss HNSW index over `vectors` (Euclidean), deterministic for the same input."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], 32)
    index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
    index.add(np.ascontiguousarray(vectors, np.float32))
    return index


def _neighbours(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(face, neighbour, squared distance) for each face's NEIGHBOURS nearest."""
    squared, found = _index(vectors).search(np.ascontiguousarray(vectors, np.float32), NEIGHBOURS + 1)
    rows = np.repeat(np.arange(len(vectors)), found.shape[1])
    keep = found.reshape(-1) >= 0
    return rows[keep], found.reshape(-1)[keep], squared.reshape(-1)[keep]


def _chained_parts(vectors: np.ndarray, distance: float) -> np.ndarray:
    """A part number per face: faces joined by a chain of neighbours each closer than `distance`."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols, squared = _neighbours(vectors)
    close = squared < distance**2
    graph = csr_matrix(
        (np.ones(int(close.sum()), np.int8), (rows[close], cols[close])), shape=(len(vectors),) * 2
    )
    return connected_components(graph, directed=False)[1]


def _neighbour_graph(vectors: np.ndarray):
    """Each face linked to its NEIGHBOURS nearest (a sparse, symmetric connectivity matrix)."""
    from scipy.sparse import csr_matrix

    rows, cols, _ = _neighbours(vectors)
    graph = csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(len(vectors),) * 2)
    return graph.maximum(graph.T)


def join_known(
    embeddings: np.ndarray, known: np.ndarray, known_people: np.ndarray, distance: float = PERSON_DISTANCE
) -> np.ndarray:
    """For each new embedding, the known person whose faces lie closest on average (the same
    rule as `cluster`'s average linkage), if within `distance`; else -1. Past EXACT_FACES known
    faces, the candidates are the people whose centroids lie nearest and within `distance` (no
    person's faces lie nearer on average than its centroid), each weighed by at most
    PERSON_SAMPLE of its faces: the search grows with the new faces times the people, not
    times all known faces."""
    people = np.unique(known_people)
    if not len(embeddings) or not len(people):
        return np.full(len(embeddings), -1, np.int64)
    if len(known) <= EXACT_FACES:  # every pair: a new x known matrix of distances, no more
        gaps = _gaps(embeddings, known)
        mean_gap = np.stack([gaps[:, known_people == p].mean(axis=1) for p in people], axis=1)
        best = mean_gap.argmin(axis=1)
        return np.where(mean_gap[np.arange(len(embeddings)), best] < distance, people[best], -1)
    order = np.argsort(known_people, kind="stable")  # each person's faces together, in their order
    _, first, count = np.unique(known_people[order], return_index=True, return_counts=True)
    centroids = np.zeros((len(people), known.shape[1]), np.float64)
    np.add.at(centroids, np.searchsorted(people, known_people), known)
    centroids = np.ascontiguousarray(centroids / count[:, None], np.float32)
    # exact (faiss's brute force, in blocks): an HNSW graph over people's centroids, which lie
    # about equally far from each other, missed the nearest one for 1 new face in 60
    import faiss

    squared, found = faiss.knn(
        np.ascontiguousarray(embeddings, np.float32), centroids, min(CANDIDATES, len(people))
    )
    joined = np.full(len(embeddings), -1, np.int64)
    for i, vector in enumerate(embeddings):
        best, best_gap = -1, distance
        for c, bound in zip(found[i], squared[i], strict=True):
            if c < 0 or bound >= best_gap**2:  # sorted nearest first: no later one can be closer
                break
            faces = known[order[first[c] : first[c] + min(int(count[c]), PERSON_SAMPLE)]]
            gap = float(np.linalg.norm(faces - vector, axis=1).mean())
            if gap < best_gap:
                best, best_gap = int(people[c]), gap
        joined[i] = best
    return joined


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

    def pairs(*labels: np.ndarray) -> float:  # pairs sharing every label given, from counts: O(n)
        _, counts = np.unique(np.stack(labels, axis=1), axis=0, return_counts=True)
        return float((counts.astype(np.float64) * (counts - 1) / 2).sum())

    both, same, together = pairs(truth, groups), pairs(truth), pairs(groups)
    return {
        "pair_precision": both / max(1.0, together),
        "pair_recall": both / max(1.0, same),
        "ari": float(adjusted_rand_score(truth, groups)),
        "people": len(np.unique(truth)),
        "groups": len(np.unique(groups)),
    }
