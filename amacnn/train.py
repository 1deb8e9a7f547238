"""Training loop: the paper's recipe by default, measured improvements as options.

Images are decoded once into memory (uint8, amacnn/data.py) and augmented per batch on the
training device; every epoch writes a checkpoint so `--resume` continues a killed run.
`train` reads as its steps: check the options, resume, prepare the data, initialise, then one
epoch, validation and a checkpoint at a time, and finally score the best weights.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer_mine.amacnn.catalog import CARD_FILE
from fer_mine.amacnn.data import PreparedData, prepare_data
from fer_mine.amacnn.datasets import Dataset
from fer_mine.amacnn.loss import HybridLoss, inverse_frequency_weights
from fer_mine.amacnn.metrics import plot_confusion, plot_history
from fer_mine.amacnn.model import AMACNN, PRESETS, AMACNNEnsemble, build_model, pick_device
from fer_mine.amacnn.predict import evaluate_loaded, summarize_metrics, to_device_images
from fer_mine.amacnn.recipe import FERPLUS_TARGETS, OPTIMIZERS, SCHEDULES, TrainOptions
from fer_mine.amacnn.weights import ModelCard, load_model, save_model, write_card
from fer_mine.errors import FerMineError
from fer_mine.transforms.augment import training_augmentation
from fer_mine.transforms.preprocess import Preprocess

CHECKPOINT_FILE = "checkpoint.pt"


def hardware_summary(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (CPU)"


@dataclass
class Run:
    """What one training run holds from epoch to epoch, and what its checkpoint restores."""

    data: PreparedData
    preprocess: Preprocess
    model: AMACNN
    optimizer: torch.optim.Optimizer
    criterion: HybridLoss
    augment: torch.nn.Module | None
    teacher: torch.nn.Module | None
    teacher_card: ModelCard | None
    lineage: dict | None  # the card of the weights this run started from (--init)
    device: torch.device
    generator: torch.Generator
    card: ModelCard
    images: dict[str, torch.Tensor | None] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    best_acc: float = -1.0
    stale: int = 0
    elapsed: float = 0.0


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
    check_options(options)
    device = device or pick_device()
    output.mkdir(parents=True, exist_ok=True)
    checkpoint_path = output / CHECKPOINT_FILE
    checkpoint, options = _resume(checkpoint_path, options, resume, log)
    _check_votes(options, votes)
    torch.manual_seed(options.seed)
    np.random.seed(options.seed)
    config = PRESETS[options.preset].config
    preprocess = Preprocess(size=config.input_size, channels=config.in_channels)
    data = prepare_data(datasets, preprocess, options, log, votes)
    run = _initialise(data, preprocess, options, checkpoint, device, log)
    began = time.perf_counter() - run.elapsed
    for epoch in range(run.start_epoch, options.epochs):
        if run.stale >= options.patience:
            break
        train_loss, train_acc = _one_epoch(run, options, epoch, began, progress)
        val_loss, val_acc = _validate(run.model, run.criterion, run.images["val"], run.images["val_labels"],
                                      preprocess)  # fmt: skip
        run.elapsed = time.perf_counter() - began
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
               "val_accuracy": val_acc, "lr": run.optimizer.param_groups[0]["lr"],
               "seconds": round(run.elapsed, 1)}  # fmt: skip
        run.history.append(row)
        if val_acc > run.best_acc:
            run.best_acc, run.stale = val_acc, 0
            save_model(run.model, run.card, output)
        else:
            run.stale += 1
        log(
            f"epoch {epoch + 1}/{options.epochs}: loss {train_loss:.4f} "
            f"acc {train_acc:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}"
            + (" *" if run.stale == 0 else "")
        )
        _checkpoint(run, options, epoch, checkpoint_path)
        _write_history(run.history, output)
        epoch_seconds = run.elapsed - (run.history[-2]["seconds"] if len(run.history) > 1 else 0.0)
        if options.time_limit_min and run.elapsed + epoch_seconds > options.time_limit_min * 60:
            log(f"time limit of {options.time_limit_min} min: stopping after epoch {epoch + 1}")
            break
    return finish(output, data, options, run.history, run.elapsed, device, log, run.lineage, run.teacher_card)


def check_options(options: TrainOptions) -> None:
    """Refuse unknown names before any minute is spent decoding."""
    if options.preset not in PRESETS:
        raise FerMineError(f"unknown preset {options.preset!r}; choose from {', '.join(PRESETS)}")
    if options.schedule not in SCHEDULES:
        raise FerMineError(f"unknown schedule {options.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if options.optimizer not in OPTIMIZERS:
        raise FerMineError(f"unknown optimizer {options.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if options.ferplus_targets not in FERPLUS_TARGETS:
        raise FerMineError(f"--ferplus-targets: choose from {', '.join(FERPLUS_TARGETS)}")


def _resume(
    checkpoint_path: Path, options: TrainOptions, resume: bool, log: Callable
) -> tuple[dict | None, TrainOptions]:
    """The checkpoint to continue from, and the options it was started with (only the epochs and
    the time limit can change on resuming)."""
    if resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved = checkpoint["options"]
        options = TrainOptions(
            **{**saved, "epochs": options.epochs, "time_limit_min": options.time_limit_min}
        )
        log(f"resuming after epoch {checkpoint['epoch'] + 1} ({checkpoint_path})")
        return checkpoint, options
    if resume:
        log(f"no checkpoint in {checkpoint_path.parent}; starting from scratch")
    return None, options


def _check_votes(options: TrainOptions, votes: Dataset | None) -> None:
    if (votes.name if votes else "") != options.votes_from:
        started = f"with --votes-from {options.votes_from}" if options.votes_from else "without --votes-from"
        raise FerMineError(f"--resume: this run was started {started}; resume it the same way")
    if votes is not None and options.ferplus_targets != "distribution":
        raise FerMineError("--votes-from blends soft targets: it needs --ferplus-targets distribution")


def _initialise(
    data: PreparedData,
    preprocess: Preprocess,
    options: TrainOptions,
    checkpoint: dict | None,
    device: torch.device,
    log: Callable,
) -> Run:
    """Network (random, --init's weights, or the checkpoint's), loss, optimizer, augmentation and
    teacher, in the order that keeps a seed's random draws the same."""
    model = build_model(options.preset, num_classes=len(data.labels)).to(device)
    lineage: dict | None = checkpoint.get("init_from") if checkpoint is not None else None
    if options.init_from and checkpoint is None:
        lineage = _init_weights(model, data.labels, options, log)
    model = model.to(memory_format=torch.channels_last)
    images = {
        "train": to_device_images(data.train.images, device),
        "train_labels": torch.from_numpy(data.train.labels).to(device),
        # soft targets per image (one-hot where a dataset has no votes), or None: class indices
        "train_targets": torch.from_numpy(data.train.distributions).to(device)
        if options.ferplus_targets == "distribution"
        else None,
        "val": to_device_images(data.val.images, device),
        "val_labels": torch.from_numpy(data.val.labels).to(device),
    }
    class_weights = inverse_frequency_weights(data.train.labels.tolist(), len(data.labels))
    criterion = HybridLoss(class_weights.to(device), options.ce_weight, options.focal_weight,
                           label_smoothing=options.label_smoothing)  # fmt: skip
    optimizer_class = torch.optim.AdamW if options.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    augment = training_augmentation(options.augment).to(device) if options.augment > 0 else None
    teacher, teacher_card = (
        _load_teacher(options.teacher, preprocess, data.labels, device, log)
        if options.teacher
        else (None, None)
    )
    card = ModelCard(name=options.name, config=model.config, preprocess=preprocess, labels=data.labels,
                     preset=options.preset)  # fmt: skip
    run = Run(data=data, preprocess=preprocess, model=model, optimizer=optimizer, criterion=criterion,
              augment=augment, teacher=teacher, teacher_card=teacher_card, lineage=lineage, device=device,
              generator=torch.Generator().manual_seed(options.seed), card=card, images=images)  # fmt: skip
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        run.history, run.start_epoch = checkpoint["history"], checkpoint["epoch"] + 1
        run.best_acc, run.stale, run.elapsed = (
            checkpoint["best_acc"],
            checkpoint["stale"],
            checkpoint["elapsed"],
        )
        run.generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])
    return run


def _init_weights(model: AMACNN, labels: tuple[str, ...], options: TrainOptions, log: Callable) -> dict:
    """Load --init's weights (one member of an ensemble with --init-member) into `model`; returns
    their card, so that the new card records the whole chain."""
    start, start_card = load_model(options.init_from, inference=False)
    if start_card.config != model.config or start_card.labels != labels:
        raise FerMineError(f"--init {options.init_from}: its preset or labels differ from this run's")
    if isinstance(start, AMACNNEnsemble) != (options.init_member >= 0):
        raise FerMineError(
            f"--init {options.init_from} is an ensemble of {start_card.members}: pick one with --init-member"
            if isinstance(start, AMACNNEnsemble)
            else f"--init-member needs an ensemble; {options.init_from} is a single network"
        )
    if isinstance(start, AMACNNEnsemble):
        if options.init_member >= len(start.members):
            raise FerMineError(f"--init-member {options.init_member}: it has {len(start.members)} members")
        start = start.members[options.init_member]
    model.load_state_dict(start.state_dict())
    lineage = {k: getattr(start_card, k) for k in ("name", "sha256", "training", "metrics")}
    if options.init_member >= 0:
        lineage["member"] = options.init_member
    log(f"starting from the weights of {start_card.name} ({start_card.sha256[:12]})")
    return lineage


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


def _one_epoch(
    run: Run, options: TrainOptions, epoch: int, began: float, progress: Callable | None
) -> tuple[float, float]:
    """One pass over the training images in a seeded order; returns mean loss and accuracy."""
    model, optimizer, device = run.model, run.optimizer, run.device
    train_labels, train_targets = run.images["train_labels"], run.images["train_targets"]
    steps_per_epoch = math.ceil(len(train_labels) / options.batch_size)
    model.train()
    order = torch.randperm(len(train_labels), generator=run.generator).to(device)
    # running sums stay on the device: one host sync per progress update, not per step
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step in range(steps_per_epoch):
        for group in optimizer.param_groups:
            elapsed = time.perf_counter() - began
            group["lr"] = options.lr * _lr_factor(options, epoch + step / steps_per_epoch, elapsed)
        idx = order[step * options.batch_size : (step + 1) * options.batch_size]
        targets = train_labels[idx]
        batch, soft_targets = _batch(
            run, options, idx, train_targets[idx] if train_targets is not None else None
        )
        logits, loss = _loss(run, options, batch, soft_targets if soft_targets is not None else targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == targets).sum()
        seen += len(idx)
        if progress and (step % 25 == 0 or step + 1 == steps_per_epoch):
            progress(epoch, step + 1, steps_per_epoch, total_loss.item() / seen, correct.item() / seen)
    return total_loss.item() / seen, correct.item() / seen


def _batch(
    run: Run, options: TrainOptions, idx: torch.Tensor, soft_targets: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The augmented, normalised batch and its soft targets (mixed with --mixup)."""
    batch = run.images["train"][idx].float().div_(255.0)
    if run.augment is not None:
        batch = run.augment(batch).clamp_(0.0, 1.0)
    batch = run.preprocess.normalize(batch).contiguous(memory_format=torch.channels_last)
    if options.mixup > 0:
        lam = float(np.random.beta(options.mixup, options.mixup))
        perm = torch.randperm(len(idx), device=run.device)
        batch = lam * batch + (1 - lam) * batch[perm]
        if soft_targets is None:
            soft_targets = F.one_hot(run.images["train_labels"][idx], len(run.data.labels)).float()
        soft_targets = lam * soft_targets + (1 - lam) * soft_targets[perm]
    return batch, soft_targets


def _loss(
    run: Run, options: TrainOptions, batch: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the hybrid loss, with the teacher's soft-target term under --teacher."""
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
        logits = run.model(batch)
        if run.teacher is not None:
            with torch.no_grad():
                teacher_logits = run.teacher(batch)
    logits = logits.float()
    loss = run.criterion(logits, targets)
    if run.teacher is not None:
        soft = distillation_loss(logits, teacher_logits.float(), options.distill_temperature)
        loss = (1 - options.distill_weight) * loss + options.distill_weight * soft
    return logits, loss


def _checkpoint(run: Run, options: TrainOptions, epoch: int, path: Path) -> None:
    """Everything `--resume` needs, written whole or not at all."""
    state = {"options": asdict(options), "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "history": run.history, "epoch": epoch, "best_acc": run.best_acc, "stale": run.stale,
             "elapsed": run.elapsed, "generator": run.generator.get_state(), "torch_rng": torch.get_rng_state(),
             "init_from": run.lineage}  # fmt: skip
    torch.save(state, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


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
