"""Whether telling people apart holds across populations: verification and grouping per
population, with the grouping rule `run --people` uses (people/cluster.py).

    python -m benchmarks.people_populations --lfw /path/to/lfw [--data-root ../shared/data]

Populations: AT&T's faces (40 people x 10 studio photos, gray) and, from Labeled Faces in the
Wild (web photos of public figures, 250x250, one folder per person; docs/data/lfw/SOURCE.md says
where it came from and on what terms), people grouped below by how they appear: East Asian,
South and Southeast Asian, Black, Middle Eastern and North African, Latin American, over 70, and
white women and men for reference; at most PER_PERSON photos each. Each population is one
archive on its own, as a user's would be. People at even places in each list (AT&T: s1-s20) are
the ones rules were chosen on; the table reports the others.

Each photo goes through YuNet (the face nearest the photo's centre, as LFW centres its person),
the chip aligned from the five landmarks and dlib's ResNet (`people/`), as in `run --people`.
Embeddings are cached (`--cache`) so that rules can be compared without embedding again. Prints
the grid the cut's scales were chosen from, then per population the cut, verification and
grouping, and archives of only 1-3 of its people (which the cut must not split).
Skips with a message without the data (a fresh machine).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy import DEFAULT_ROOT
from benchmarks.people_quality import verification
from fer_mine.media.detect import DetectorSettings, FaceDetector
from fer_mine.people.cluster import (
    PERSON_DISTANCE,
    cluster,
    cut_between,
    distance_scales,
    pair_scores,
    person_distance,
)
from fer_mine.people.embed import embed, face_chip, load_embedder

PER_PERSON = 20
# Who is in each population: public figures with at least 5 photos in LFW, grouped by
# appearance for this measurement only (the older group overlaps the others)
POPULATIONS: dict[str, tuple[str, ...]] = {
    "East Asian": ("Junichiro_Koizumi", "Roh_Moo-hyun", "Jiang_Zemin", "Hu_Jintao", "Yoriko_Kawaguchi",
                   "Wen_Jiabao", "Jackie_Chan", "Tang_Jiaxuan", "Kim_Ryong-sung", "Zhu_Rongji",
                   "Kim_Dae-jung", "Chen_Shui-bian", "Yao_Ming", "Michelle_Kwan", "Ai_Sugiyama",
                   "Lucy_Liu", "Tung_Chee-hwa"),
    "South and Southeast Asian": ("Gloria_Macapagal_Arroyo", "Megawati_Sukarnoputri", "Mahathir_Mohamad",
                                  "Paradorn_Srichaphan", "Thaksin_Shinawatra", "Atal_Bihari_Vajpayee",
                                  "Pervez_Musharraf", "Yashwant_Sinha", "Benazir_Bhutto"),
    "Black": ("Colin_Powell", "Serena_Williams", "Kofi_Annan", "Venus_Williams", "Halle_Berry",
              "Condoleezza_Rice", "Tiger_Woods", "James_Blake", "Jason_Kidd", "Muhammad_Ali",
              "Charles_Moose", "John_Allen_Muhammad", "Jesse_Jackson", "Thabo_Mbeki",
              "Denzel_Washington", "Angela_Bassett"),
    "Middle Eastern and North African": ("Mohammad_Khatami", "Mahmoud_Abbas", "Saddam_Hussein",
                                         "Recep_Tayyip_Erdogan", "Abdullah_Gul", "Taha_Yassin_Ramadan",
                                         "Mohammed_Al-Douri", "Yasser_Arafat", "Naji_Sabri", "King_Abdullah_II",
                                         "Hosni_Mubarak", "Hamid_Karzai", "Ariel_Sharon"),
    "Latin American": ("Hugo_Chavez", "Luiz_Inacio_Lula_da_Silva", "Alejandro_Toledo", "Nestor_Kirchner",
                       "Alvaro_Uribe", "Vicente_Fox", "Ricardo_Lagos", "Carlos_Menem", "Eduardo_Duhalde",
                       "Lucio_Gutierrez", "Gonzalo_Sanchez_de_Lozada", "Nicanor_Duarte_Frutos",
                       "Jennifer_Lopez", "Salma_Hayek", "Jose_Serra", "Fernando_Henrique_Cardoso",
                       "Ana_Guevara"),
    "over 70": ("Queen_Elizabeth_II", "John_Paul_II", "Fidel_Castro", "Jacques_Chirac", "Walter_Mondale",
                "Hans_Blix", "Jimmy_Carter", "Bob_Hope", "George_HW_Bush", "Jiang_Zemin", "Kim_Dae-jung",
                "Zhu_Rongji", "Atal_Bihari_Vajpayee", "Mahathir_Mohamad", "Carlos_Menem", "Yasser_Arafat"),
    "white women": ("Laura_Bush", "Jennifer_Capriati", "Winona_Ryder", "Naomi_Watts", "Lindsay_Davenport",
                    "Jennifer_Aniston", "Amelie_Mauresmo", "Angelina_Jolie", "Nicole_Kidman", "Julianne_Moore",
                    "Renee_Zellweger", "Meryl_Streep", "Nancy_Pelosi", "Hillary_Clinton", "Kim_Clijsters",
                    "Britney_Spears"),
    "white men": ("Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Jean_Chretien", "John_Ashcroft",
                  "Vladimir_Putin", "Arnold_Schwarzenegger", "Lleyton_Hewitt", "Andre_Agassi", "Tom_Ridge",
                  "Silvio_Berlusconi", "John_Negroponte", "David_Beckham", "Bill_Clinton", "Jack_Straw",
                  "Rudolph_Giuliani"),
}  # fmt: skip
ATT = "AT&T (studio, gray)"


def _photos(lfw: Path | None, att: Path | None) -> list[tuple[str, str, Path]]:
    """(population, person, photo path) of every photo measured."""
    found = []
    if att is not None and att.is_dir():
        for folder in sorted(att.glob("s*"), key=lambda p: int(p.name[1:])):
            found += [
                (ATT, folder.name, path) for path in sorted(folder.glob("*.pgm"), key=lambda p: int(p.stem))
            ]
    if lfw is not None and lfw.is_dir():
        for population, people in POPULATIONS.items():
            for person in people:
                found += [(population, person, p) for p in sorted((lfw / person).glob("*.jpg"))[:PER_PERSON]]
    return found


def embeddings(photos: list[tuple[str, str, Path]], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """An embedding per photo (NaN where no face was found) and whether a face was found."""
    key = hashlib.sha256("\n".join(str(p) for *_, p in photos).encode()).hexdigest()[:16]
    path = cache / f"people-populations-{key}.npz"
    if path.is_file():
        stored = np.load(path)
        return stored["embeddings"], stored["found"]
    detector, model = FaceDetector(DetectorSettings()), load_embedder()
    chips, found = [], []
    for *_, photo_path in photos:
        photo = cv2.imread(str(photo_path))
        faces = detector.detect(photo) if photo is not None else []
        found.append(bool(faces))
        if faces:
            centre = np.array(photo.shape[1::-1]) / 2
            face = min(
                faces, key=lambda f: float(np.hypot(f.x + f.w / 2 - centre[0], f.y + f.h / 2 - centre[1]))
            )
            chips.append(face_chip(photo, face.landmarks))
    vectors = np.full((len(photos), 128), np.nan, np.float32)
    vectors[np.array(found)] = embed(np.stack(chips), model)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=vectors, found=np.array(found))
    return vectors, np.array(found)


def archives(photos: list, vectors: np.ndarray, found: np.ndarray, chosen: bool) -> dict[tuple, tuple]:
    """{(population, people in it or 0 for all): (embeddings, person numbers)}: each population's
    half (the people rules were chosen on, or the others), whole and as archives of its first
    1, 2 and 3 people (a family's few people: the cut must not split them)."""
    made = {}
    for population in [ATT, *POPULATIONS]:
        rows = [i for i, (p, _, _) in enumerate(photos) if p == population and found[i]]
        order = list(dict.fromkeys(photos[i][1] for i in rows))
        half = [i for i in rows if (order.index(photos[i][1]) % 2 == 0) == chosen]
        if not half:
            continue
        people = np.array([order.index(photos[i][1]) // 2 for i in half])
        made[(population, 0)] = (vectors[half], people)
        for n in FEW:
            made[(population, n)] = (vectors[half][people < n], people[people < n])
    return made


FEW = (1, 2, 3)
# the grid the rule's scales were chosen from (on the chosen half): the smallest ARI over the
# populations first, then the mean; the few-people archives are printed beside it
GRID = {"pairs_scale": (0.74, 0.76, 0.78, 0.80), "nearest_scale": (0.0, 1.3, 1.5, 1.7, 1.9),
        "max_distance": (0.55, 0.60)}  # fmt: skip


def choose(made: dict[tuple, tuple], console: Console) -> None:
    scales = {key: distance_scales(v) for key, (v, _) in made.items()}
    rows = []
    for rule in itertools.product(*GRID.values()):

        def scores(key: tuple, rule: tuple = rule) -> dict:
            vectors, people = made[key]
            return pair_scores(people, cluster(vectors, cut_between(*scales[key], *rule)))

        whole = [scores(k)["ari"] for k in made if k[1] == 0]
        few = {n: [scores(k) for k in made if k[1] == n] for n in FEW}
        rows.append((round(min(whole), 3), round(float(np.mean(whole)), 3), *rule,
                     np.mean([s["pair_recall"] for s in few[1]]), np.mean([s["ari"] for s in few[2]]),
                     np.mean([s["ari"] for s in few[3]])))  # fmt: skip
    table = Table("smallest ARI", "mean ARI", "x median pair", "x median nearest", "at most",
                  "1 person: pair recall", "2 people: ARI", "3 people: ARI",
                  title="choosing the cut's scales (populations' chosen half; best first)")  # fmt: skip
    for row in sorted(rows, key=lambda r: (r[0], r[1], -r[4]), reverse=True)[:12]:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def report(made: dict[tuple, tuple], console: Console, chosen: bool) -> None:
    table = Table("population", "people", "faces", "same / different mean", "cut",
                  "verification at cut (same found, different merged)", "groups", "pair precision",
                  "pair recall", "ARI", f"ARI at {PERSON_DISTANCE} (all)",
                  title=f"telling people apart, per population ({'chosen on' if chosen else 'held out from the choice'})")  # fmt: skip
    few = Table("population", *(f"{n} {'person' if n == 1 else 'people'}: groups (pair recall)" for n in FEW),
                title="archives of a few people (the population's first people): split apart?")  # fmt: skip
    for (population, n), (mine, people) in made.items():
        if n:
            continue
        cut = person_distance(mine)
        v = verification(mine, people, cut)
        s = pair_scores(people, cluster(mine, cut))
        fixed = pair_scores(people, cluster(mine, PERSON_DISTANCE))["ari"]
        table.add_row(population, str(s["people"]), str(len(mine)),
                      f"{v['same_mean']:.2f} / {v['different_mean']:.2f}", f"{cut:.2f}",
                      f"{v['accuracy']:.4f} ({v['same_found']:.3f}, {v['different_merged']:.4f})",
                      str(s["groups"]), f"{s['pair_precision']:.3f}", f"{s['pair_recall']:.3f}", f"{s['ari']:.3f}",
                      f"{fixed:.3f}")  # fmt: skip
        cells = []
        for k in FEW:
            vectors, ids = made[(population, k)]
            s = pair_scores(ids, cluster(vectors))
            cells.append(f"{s['groups']} ({s['pair_recall']:.3f})")
        few.add_row(population, *cells)
    console.print(table)
    console.print(few)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, help="LFW's folder of per-person folders")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fer-mine")
    args = parser.parse_args()
    photos = _photos(args.lfw, args.data_root / "att_faces")
    if not photos:
        print(f"skipped: neither --lfw nor att_faces under {args.data_root} was found")
        return
    vectors, found = embeddings(photos, args.cache)
    console = Console(width=170)
    console.print(f"{len(photos)} photos, {int(found.sum())} with a face found")
    chosen = archives(photos, vectors, found, chosen=True)
    choose(chosen, console)
    report(chosen, console, chosen=True)
    report(archives(photos, vectors, found, chosen=False), console, chosen=False)


if __name__ == "__main__":
    main()
