"""Training loop: the paper's recipe by default, measured improvements as options.

Images are decoded once into memory (uint8) and augmented per batch on the
training device; every epoch writes a checkpoint so `--resume` continues a killed run.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fer_mine.amacnn.catalog import CARD_FILE
from fer_mine.amacnn.datasets import (
    Dataset,
    LoadedSplit,
    load_split,
    pixel_hashes,
    stratified_split,
)
from fer_mine.amacnn.loss import HybridLoss, inverse_frequency_weights
from fer_mine.amacnn.metrics import classification_metrics, plot_confusion, plot_history
from fer_mine.amacnn.model import (
    AMACNN,
    PRESETS,
    AMACNNEnsemble,
    build_model,
    class_probabilities,
    pick_device,
)
from fer_mine.amacnn.recipe import FERPLUS_TARGETS, OPTIMIZERS, SCHEDULES, TrainOptions
from fer_mine.amacnn.weights import ModelCard, load_model, save_model, write_card
from fer_mine.errors import FerMineError
from fer_mine.labels import CONTEMPT, EMOTIONS
from fer_mine.transforms.augment import training_augmentation
from fer_mine.transforms.preprocess import Preprocess

CHECKPOINT_FILE = "checkpoint.pt"


def hardware_summary(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (CPU)"


@dataclass
class PreparedData:
    labels: tuple[str, ...]
    train: LoadedSplit
    val: LoadedSplit
    tests: dict[str, LoadedSplit]  # "<dataset>/<split>" -> images
    counts: dict[str, int]
    notes: list[str]


def _concat(parts: list[LoadedSplit]) -> LoadedSplit:
    return LoadedSplit(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        [i for p in parts for i in p.ids],
        [s for p in parts for s in p.skipped],
        np.concatenate([p.distributions for p in parts]),
    )


def _take(split: LoadedSplit, indices: list[int]) -> LoadedSplit:
    return LoadedSplit(
        split.images[indices],
        split.labels[indices],
        [split.ids[i] for i in indices],
        [],
        split.distributions[indices],
    )


def prepare_data(
    datasets: list[Dataset],
    preprocess: Preprocess,
    options: TrainOptions,
    log: Callable,
    votes: Dataset | None = None,
) -> PreparedData:
    """Decode, drop training images identical to any test image, blend in `votes` (another
    dataset's annotator votes for the same pictures), carve validation from train."""
    labels = EMOTIONS + ((CONTEMPT,) if options.keep_contempt else ())
    trains, tests, notes = [], {}, []
    for dataset in datasets:
        notes += [f"{dataset.name}: {n}" for n in dataset.notes]
        if "train" not in dataset.splits:
            raise FerMineError(f"dataset {dataset.name} has no training split")
        train = load_split(dataset.splits["train"], preprocess, labels)
        missing = [lab for i, lab in enumerate(labels[:7]) if not (train.labels == i).any()]
        if missing:
            raise FerMineError(f"dataset {dataset.name}: no training images for {', '.join(missing)}")
        if train.skipped:
            notes.append(f"{dataset.name}/train: skipped {len(train.skipped)} unreadable images")
        trains.append(train)
        for split_name in ("test",):
            if split_name in dataset.splits:
                loaded = load_split(dataset.splits[split_name], preprocess, labels)
                if loaded.skipped:
                    notes.append(f"{dataset.name}/{split_name}: skipped {len(loaded.skipped)}")
                tests[f"{dataset.name}/{split_name}"] = loaded
    trains = _one_copy_per_picture(datasets, trains, tests, notes)
    train = _concat(trains)
    # FER-2013 holds byte-identical images across its splits, and FER+ re-labels the same
    # images: never let a test image (of any chosen dataset) into training.
    test_hashes = {h for t in tests.values() for h in pixel_hashes(t.images)}
    clean = [i for i, h in enumerate(pixel_hashes(train.images)) if h not in test_hashes]
    if len(clean) < len(train.ids):
        notes.append(f"dropped {len(train.ids) - len(clean)} training images identical to a test image")
        train = _take(train, clean)
    if votes is not None:
        train = _blend_votes(train, votes, preprocess, labels, options.votes_weight, notes)
    label_names = [labels[i] for i in train.labels]
    keep, held = stratified_split(label_names, options.val_fraction, options.split_seed)
    train, val = _take(train, keep), _take(train, held)
    if options.train_on_valid:  # after the carve: validation stays the same pictures either way
        train = _concat(
            [train, _valid_splits(datasets, preprocess, labels, [train, val, *tests.values()], notes)]
        )
    counts = {"train": len(train.ids), "val": len(val.ids)} | {k: len(v.ids) for k, v in tests.items()}
    for note in notes:
        log(note)
    return PreparedData(labels, train, val, tests, counts, notes)


def _valid_splits(
    datasets: list[Dataset],
    preprocess: Preprocess,
    labels: tuple[str, ...],
    seen: list[LoadedSplit],
    notes: list[str],
) -> LoadedSplit:
    """Each dataset's own `valid` split, to train on (FER+'s FER2013Valid: FER-2013's PublicTest
    pictures, relabelled), less the pictures that training, validation or a test split already
    hold, up to re-encoding noise."""
    parts: list[LoadedSplit] = []
    for dataset in datasets:
        if "valid" not in dataset.splits:
            raise FerMineError(f"--train-on-valid: dataset {dataset.name} has no valid split")
        loaded = load_split(dataset.splits["valid"], preprocess, labels)
        held = same_pictures(loaded.images, [s.images for s in seen + parts])
        notes.append(
            f"{dataset.name}/valid: {int((~held).sum())} pictures join training"
            + (
                f"; {int(held.sum())} are already in training, validation or a test split"
                if held.any()
                else ""
            )
        )
        parts.append(_take(loaded, np.flatnonzero(~held).tolist()))
    return _concat(parts)


def _one_copy_per_picture(
    datasets: list[Dataset], trains: list[LoadedSplit], tests: dict[str, LoadedSplit], notes: list[str]
) -> list[LoadedSplit]:
    """Datasets that hold the same pictures (FER+ re-labels FER-2013's, saved as PNG where the
    Kaggle copy is JPEG) must not put one picture into training twice, maybe under two labels,
    nor one dataset's test picture into another's training. Each picture keeps the copy of the
    first dataset in this order: datasets with annotator votes (FER+) first, then as given."""
    if len(datasets) < 2:
        return trains
    order = sorted(range(len(datasets)), key=lambda i: not any(datasets[i].splits["train"].votes))
    kept: dict[int, LoadedSplit] = {}
    for position, i in enumerate(order):
        name, train = datasets[i].name, trains[i]
        others = [tests[k] for k in tests if not k.startswith(f"{datasets[i].name}/")]
        earlier = [kept[j] for j in order[:position]]
        in_tests = same_pictures(train.images, [t.images for t in others])
        in_earlier = same_pictures(train.images, [e.images for e in earlier]) & ~in_tests
        if in_tests.any():
            notes.append(
                f"{name}/train: dropped {int(in_tests.sum())} pictures that another dataset tests on"
            )
        if in_earlier.any():
            source = ", ".join(datasets[j].name for j in order[:position])
            notes.append(
                f"{name}/train: {int(in_earlier.sum())} pictures are also in {source}; "
                f"they are used once, labelled by {source}"
            )
        kept[i] = _take(train, np.flatnonzero(~(in_tests | in_earlier)).tolist())
    return [kept[i] for i in range(len(datasets))]


def _blend_votes(
    train: LoadedSplit,
    votes: Dataset,
    preprocess: Preprocess,
    labels: tuple[str, ...],
    weight: float,
    notes: list[str],
) -> LoadedSplit:
    """Targets of the training pictures that `votes` holds too (FER+ re-labels FER-2013's):
    (1 - weight) x their own label + weight x the annotators' vote distribution there. Pictures
    it lacks, or labels unknown or "not a face" by majority, keep their own label alone."""
    split = votes.splits.get("train")
    if split is None or not any(split.votes):
        raise FerMineError(f"--votes-from {votes.name}: it holds no annotator votes for training pictures")
    pool = load_split(split, preprocess, labels)
    nearest = nearest_pictures(train.images, pool.images)
    found = nearest >= 0
    distributions = train.distributions.copy()
    distributions[found] = (1 - weight) * distributions[found] + weight * pool.distributions[nearest[found]]
    notes.append(
        f"{int(found.sum())} of {len(found)} training pictures are in {votes.name} too: their targets are "
        f"{1 - weight:g} x their own label + {weight:g} x {votes.name}'s vote distribution"
    )
    return replace(train, distributions=distributions)


def nearest_pictures(images: np.ndarray, pool: np.ndarray, tolerance: float = 2.5) -> np.ndarray:
    """Each image's copy in `pool` up to re-encoding noise, as an index into it, or -1: the
    nearest pool image by an 8x8 thumbnail, accepted when the mean absolute pixel difference is
    under `tolerance`. Measured on FER+ PNGs against the Kaggle FER-2013 JPEGs: the same picture
    differs by 0.7-1.5 gray levels, the nearest other picture by 3 or more (median 34)."""
    found = np.full(len(images), -1, dtype=np.int64)
    if not len(pool) or not len(images):
        return found
    queries = _thumbnails(images)
    keys = torch.from_numpy(_thumbnails(pool))
    key_norms = (keys**2).sum(1)
    for start in range(0, len(images), 2048):
        block = torch.from_numpy(queries[start : start + 2048])
        distance = (block**2).sum(1, keepdim=True) - 2 * block @ keys.T + key_norms
        nearest = distance.argmin(1).numpy()
        part = images[start : start + len(block)].astype(np.int16)
        difference = np.abs(part - pool[nearest].astype(np.int16)).mean(axis=(1, 2, 3))
        found[start : start + len(block)] = np.where(difference < tolerance, nearest, -1)
    return found


def same_pictures(images: np.ndarray, pools: list[np.ndarray], tolerance: float = 2.5) -> np.ndarray:
    """Which images also appear in any pool, up to re-encoding noise (`nearest_pictures`)."""
    found = np.zeros(len(images), dtype=bool)
    for pool in pools:
        found |= nearest_pictures(images, pool, tolerance) >= 0
    return found


def _thumbnails(images: np.ndarray) -> np.ndarray:
    return (
        np.stack(
            [
                cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
                for image in images
            ]
        )
        if len(images)
        else np.zeros((0, 64), np.float32)
    )


def _to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)


@torch.no_grad()
def predict_proba(
    model: AMACNN,
    images: torch.Tensor,
    preprocess: Preprocess,
    tta: bool = False,
    batch_size: int = 512,
) -> torch.Tensor:
    """Softmax probabilities for uint8 (N, C, H, W) images already on the model's device."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = preprocess.normalize(images[start : start + batch_size])
        batch = batch.contiguous(memory_format=torch.channels_last)
        outputs.append(class_probabilities(model, batch, tta).float())
    return torch.cat(outputs) if outputs else torch.zeros(0, model.config.num_classes)


def evaluate_loaded(
    model: AMACNN,
    split: LoadedSplit,
    preprocess: Preprocess,
    labels: tuple[str, ...],
    tta: bool = False,
) -> dict:
    """Metrics for a decoded split, plus per-subset ones for FER-2013's Public/PrivateTest."""
    return metrics_of(split, predict_split(model, split, preprocess, tta), labels)


def predict_split(model: AMACNN, split: LoadedSplit, preprocess: Preprocess, tta: bool = False) -> np.ndarray:
    """The predicted label index of every image of a decoded split."""
    # a quantised model holds packed weights, not parameters: it runs on the CPU
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    probs = predict_proba(model, _to_device_images(split.images, device), preprocess, tta)
    return probs.argmax(dim=1).cpu().numpy()


def metrics_of(split: LoadedSplit, predictions: np.ndarray, labels: tuple[str, ...]) -> dict:
    """`classification_metrics` of a split's predictions, with FER-2013's test subsets apart."""
    result = classification_metrics(split.labels, predictions, labels)
    subsets = {}
    for usage in ("PrivateTest", "PublicTest"):
        mask = np.array([i.startswith(usage) for i in split.ids], dtype=bool)
        if mask.any():
            subsets[usage] = classification_metrics(split.labels[mask], predictions[mask], labels)
    if subsets:
        result["subsets"] = subsets
    return result


def _progress(options: TrainOptions, epoch: float, elapsed: float) -> float:
    """Share of the run done: by epochs, or by the time limit when that comes first."""
    done = epoch / options.epochs
    if options.time_limit_min:
        done = max(done, elapsed / (options.time_limit_min * 60))
    return min(1.0, done)


def _lr_factor(options: TrainOptions, epoch: float, elapsed: float) -> float:
    if options.warmup_epochs and epoch < options.warmup_epochs:
        return (epoch + 1) / (options.warmup_epochs + 1)
    if options.schedule == "cosine":
        # anneals to zero at the end of the run, so a time-limited run still ends annealed
        warm = options.warmup_epochs / options.epochs
        progress = (_progress(options, epoch, elapsed) - warm) / max(1e-9, 1 - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))
    return 1.0


def train(
    datasets: list[Dataset],
    output: Path,
    options: TrainOptions,
    resume: bool = False,
    device: torch.device | None = None,
    progress: Callable | None = None,
    log: Callable = print,
    votes: Dataset | None = None,
) -> ModelCard:
    """Train, keep the best-on-validation weights in `output`, evaluate them on the test splits.
    `votes`: the dataset `options.votes_from` names, whose annotator votes blend into the targets."""
    if options.preset not in PRESETS:
        raise FerMineError(f"unknown preset {options.preset!r}; choose from {', '.join(PRESETS)}")
    if options.schedule not in SCHEDULES:
        raise FerMineError(f"unknown schedule {options.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if options.optimizer not in OPTIMIZERS:
        raise FerMineError(f"unknown optimizer {options.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if options.ferplus_targets not in FERPLUS_TARGETS:
        raise FerMineError(f"--ferplus-targets: choose from {', '.join(FERPLUS_TARGETS)}")
    device = device or pick_device()
    output.mkdir(parents=True, exist_ok=True)
    checkpoint_path = output / CHECKPOINT_FILE
    checkpoint = None
    if resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved = checkpoint["options"]
        options = TrainOptions(
            **{**saved, "epochs": options.epochs, "time_limit_min": options.time_limit_min}
        )
        log(f"resuming after epoch {checkpoint['epoch'] + 1} ({checkpoint_path})")
    elif resume:
        log(f"no checkpoint in {output}; starting from scratch")

    if (votes.name if votes else "") != options.votes_from:
        started = f"with --votes-from {options.votes_from}" if options.votes_from else "without --votes-from"
        raise FerMineError(f"--resume: this run was started {started}; resume it the same way")
    if votes is not None and options.ferplus_targets != "distribution":
        raise FerMineError("--votes-from blends soft targets: it needs --ferplus-targets distribution")
    torch.manual_seed(options.seed)
    np.random.seed(options.seed)
    config = PRESETS[options.preset].config
    preprocess = Preprocess(size=config.input_size, channels=config.in_channels)
    data = prepare_data(datasets, preprocess, options, log, votes)
    model = build_model(options.preset, num_classes=len(data.labels)).to(device)
    # the card of the weights this run started from, so the new card records the whole chain
    lineage: dict | None = checkpoint.get("init_from") if checkpoint is not None else None
    if options.init_from and checkpoint is None:
        start, start_card = load_model(options.init_from, inference=False)
        if start_card.config != model.config or start_card.labels != data.labels:
            raise FerMineError(f"--init {options.init_from}: its preset or labels differ from this run's")
        if isinstance(start, AMACNNEnsemble) != (options.init_member >= 0):
            raise FerMineError(
                f"--init {options.init_from} is an ensemble of {start_card.members}: pick one with --init-member"
                if isinstance(start, AMACNNEnsemble)
                else f"--init-member needs an ensemble; {options.init_from} is a single network"
            )
        if isinstance(start, AMACNNEnsemble):
            if options.init_member >= len(start.members):
                raise FerMineError(
                    f"--init-member {options.init_member}: it has {len(start.members)} members"
                )
            start = start.members[options.init_member]
        model.load_state_dict(start.state_dict())
        lineage = {k: getattr(start_card, k) for k in ("name", "sha256", "training", "metrics")}
        if options.init_member >= 0:
            lineage["member"] = options.init_member
        log(f"starting from the weights of {start_card.name} ({start_card.sha256[:12]})")
    model = model.to(memory_format=torch.channels_last)

    train_images = _to_device_images(data.train.images, device)
    train_labels = torch.from_numpy(data.train.labels).to(device)
    # soft targets per image (one-hot where a dataset has no votes), or None: class indices
    train_targets = (
        torch.from_numpy(data.train.distributions).to(device)
        if options.ferplus_targets == "distribution"
        else None
    )
    val_images = _to_device_images(data.val.images, device)
    val_labels = torch.from_numpy(data.val.labels).to(device)
    class_weights = inverse_frequency_weights(data.train.labels.tolist(), len(data.labels))
    criterion = HybridLoss(
        class_weights.to(device),
        options.ce_weight,
        options.focal_weight,
        label_smoothing=options.label_smoothing,
    )
    optimizer_class = torch.optim.AdamW if options.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    augment = training_augmentation(options.augment).to(device) if options.augment > 0 else None
    teacher, teacher_card = (
        _load_teacher(options.teacher, preprocess, data.labels, device, log)
        if options.teacher
        else (None, None)
    )
    use_amp = device.type == "cuda"

    history: list[dict] = []
    start_epoch, best_acc, stale, elapsed = 0, -1.0, 0, 0.0
    generator = torch.Generator().manual_seed(options.seed)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        history = checkpoint["history"]
        start_epoch = checkpoint["epoch"] + 1
        best_acc, stale, elapsed = (
            checkpoint["best_acc"],
            checkpoint["stale"],
            checkpoint["elapsed"],
        )
        generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])

    card = ModelCard(
        name=options.name,
        config=model.config,
        preprocess=preprocess,
        labels=data.labels,
        preset=options.preset,
    )
    steps_per_epoch = math.ceil(len(train_labels) / options.batch_size)
    began = time.perf_counter() - elapsed
    for epoch in range(start_epoch, options.epochs):
        if stale >= options.patience:
            break
        model.train()
        order = torch.randperm(len(train_labels), generator=generator).to(device)
        # running sums stay on the device: one host sync per progress update, not per step
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for step in range(steps_per_epoch):
            for group in optimizer.param_groups:
                elapsed = time.perf_counter() - began
                group["lr"] = options.lr * _lr_factor(options, epoch + step / steps_per_epoch, elapsed)
            idx = order[step * options.batch_size : (step + 1) * options.batch_size]
            batch = train_images[idx].float().div_(255.0)
            targets = train_labels[idx]
            if augment is not None:
                batch = augment(batch).clamp_(0.0, 1.0)
            batch = preprocess.normalize(batch).contiguous(memory_format=torch.channels_last)
            soft_targets = train_targets[idx] if train_targets is not None else None
            if options.mixup > 0:
                lam = float(np.random.beta(options.mixup, options.mixup))
                perm = torch.randperm(len(idx), device=device)
                batch = lam * batch + (1 - lam) * batch[perm]
                if soft_targets is None:
                    soft_targets = F.one_hot(targets, len(data.labels)).float()
                soft_targets = lam * soft_targets + (1 - lam) * soft_targets[perm]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(batch)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(batch)
            logits = logits.float()
            loss = criterion(logits, soft_targets if soft_targets is not None else targets)
            if teacher is not None:
                soft = distillation_loss(logits, teacher_logits.float(), options.distill_temperature)
                loss = (1 - options.distill_weight) * loss + options.distill_weight * soft
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(idx)
            correct += (logits.argmax(1) == targets).sum()
            seen += len(idx)
            if progress and (step % 25 == 0 or step + 1 == steps_per_epoch):
                progress(epoch, step + 1, steps_per_epoch, total_loss.item() / seen, correct.item() / seen)
        total_loss, correct = total_loss.item(), correct.item()

        val_loss, val_acc = _validate(model, criterion, val_images, val_labels, preprocess)
        elapsed = time.perf_counter() - began
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(elapsed, 1),
        }
        history.append(row)
        if val_acc > best_acc:
            best_acc, stale = val_acc, 0
            save_model(model, card, output)
        else:
            stale += 1
        log(
            f"epoch {epoch + 1}/{options.epochs}: loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}"
            + (" *" if stale == 0 else "")
        )
        torch.save(
            {
                "options": asdict(options),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
                "epoch": epoch,
                "best_acc": best_acc,
                "stale": stale,
                "elapsed": elapsed,
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "init_from": lineage,
            },
            checkpoint_path.with_suffix(".tmp"),
        )
        os.replace(checkpoint_path.with_suffix(".tmp"), checkpoint_path)
        _write_history(history, output)
        epoch_seconds = elapsed - (history[-2]["seconds"] if len(history) > 1 else 0.0)
        if options.time_limit_min and elapsed + epoch_seconds > options.time_limit_min * 60:
            log(f"time limit of {options.time_limit_min} min: stopping after epoch {epoch + 1}")
            break

    return finish(output, data, options, history, elapsed, device, log, lineage, teacher_card)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2 so that its
    gradients keep their scale as T changes (Hinton et al. 2015). An ensemble's log mean
    probabilities serve as its logits."""
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def _load_teacher(
    name: str, preprocess: Preprocess, labels: tuple[str, ...], device: torch.device, log: Callable
) -> tuple[torch.nn.Module, ModelCard]:
    teacher, card = load_model(name, device=str(device))
    if card.preprocess != preprocess or card.labels != labels:
        raise FerMineError(
            f"--teacher {name}: its input ({card.preprocess.size}px, {card.preprocess.channels} channels) "
            f"or labels ({len(card.labels)}) differ from the student's"
        )
    log(f"distilling from {card.name} ({card.sha256[:12]}, {card.members} network(s))")
    return teacher.eval().requires_grad_(False), card


@torch.no_grad()
def _validate(model, criterion, images, labels, preprocess) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for start in range(0, len(labels), 512):
        batch = preprocess.normalize(images[start : start + 512])
        logits = model(batch.contiguous(memory_format=torch.channels_last)).float()
        target = labels[start : start + 512]
        total += criterion(logits, target).item() * len(target)
        correct += (logits.argmax(1) == target).sum().item()
    return total / max(1, len(labels)), correct / max(1, len(labels))


def _write_history(history: list[dict], output: Path) -> None:
    with (output / "history.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def finish(
    output,
    data: PreparedData,
    options,
    history,
    elapsed,
    device,
    log,
    lineage: dict | None = None,
    teacher_card: ModelCard | None = None,
) -> ModelCard:
    """Reload the best weights, evaluate them on every test split, write card and plots."""
    model, card = load_model(output, device=str(device))
    card.training = {
        "recipe": asdict(options),
        "datasets": options.datasets,
        "images": data.counts,
        "notes": data.notes,
        "epochs_run": len(history),
        "best_epoch": max(history, key=lambda r: r["val_accuracy"])["epoch"] if history else 0,
        "best_val_accuracy": max((r["val_accuracy"] for r in history), default=0.0),
        "seconds": round(elapsed, 1),
        "hardware": hardware_summary(device),
        "torch": torch.__version__,
    }
    if lineage:
        card.training["init_from"] = lineage
    if teacher_card is not None:
        card.training["teacher"] = {"name": teacher_card.name, "sha256": teacher_card.sha256}
    for key, split in data.tests.items():
        metrics = evaluate_loaded(model, split, card.preprocess, card.labels, options.tta)
        card.metrics[key] = summarize_metrics(metrics)
        plot_confusion(metrics, output / f"confusion-{key.replace('/', '-')}.png", f"{card.name} on {key}")
        log(f"{key}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
    write_card(card, output / CARD_FILE)
    if history:
        plot_history(history, output / "training-curves.png", f"{card.name} ({options.preset})")
    return card


def summarize_metrics(metrics: dict) -> dict:
    """What a model card keeps of an evaluation: headline figures and per-class recall."""
    keep = ("images", "accuracy", "macro_precision", "macro_recall", "macro_f1")
    summary = {k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k] for k in keep}
    summary["recall"] = {k: round(v["recall"], 4) for k, v in metrics["per_class"].items()}
    for name, sub in metrics.get("subsets", {}).items():
        summary[name] = summarize_metrics(sub)
    return summary
