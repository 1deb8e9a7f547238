"""The training recipe: every option of `fer-mine train`, its default and its help, in one place.

Each field's metadata is what the command line shows (help, allowed range or choices); the CLI
builds `train`'s options from it, so none is written twice. Kept apart from `train` (which
imports torch) so that the CLI can show the defaults without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fer_mine.amacnn.presets import PRESETS

SCHEDULES = ("constant", "cosine")
FERPLUS_TARGETS = ("majority", "distribution")
OPTIMIZERS = ("adam", "adamw")
# `fer-mine quantize`: quantisation-aware fine-tuning steps (amacnn/quantize.py); 0 is a static
# calibration. Chosen on amacnn-fer2013's validation split (docs/benchmarks.md, int8).
QAT_STEPS = 300


def option(default: Any, help: str = "", **cli: Any) -> Any:
    """A recipe field with what its command-line option shows: `help`, and in `cli` any of
    choices, min, max, min_open, flag (another option name), negatable (--x/--no-x),
    show_default, metavar, unset (the value that stands for "not given")."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainOptions:
    """Defaults are the paper's recipe; every other value is an option we measured. FER+ (which
    the paper does not use) trains on its vote distributions by default, as measured best."""

    preset: str = option(
        "cpu",
        "Network size; `fer-mine model-info` lists parameters and MACs of each.",
        choices=tuple(PRESETS),
    )
    epochs: int = option(45, min=1)
    batch_size: int = option(32, min=1)
    lr: float = option(5e-4, min=0, min_open=True)
    weight_decay: float = option(1e-4, min=0)
    # adam: the decay as an L2 term of the gradient (the paper's), which Adam's scaling lets switch
    # BatchNorm channels off (293 of amacnn-fer2013's 1,440 scales are 0, ablation R); adamw:
    # decoupled decay (Loshchilov & Hutter 2019), a fixed share of each weight per step
    optimizer: str = option(
        "adam",
        "adam applies --weight-decay as an L2 gradient (the paper's), which can switch BatchNorm "
        "channels off; adamw decouples it (docs/ablations.md, ablation R).",
        choices=OPTIMIZERS,
    )
    patience: int = option(10, "Early stopping: epochs without a better validation accuracy.", min=1)
    schedule: str = option("constant", "Learning-rate schedule (the paper: constant).", choices=SCHEDULES)
    warmup_epochs: int = option(0, min=0)
    label_smoothing: float = option(0.0, min=0, max=0.5)
    mixup: float = option(0.0, "Mixup Beta(a, a) parameter; 0 turns it off.", min=0)
    augment: float = option(1.0, "Augmentation strength; 0 turns augmentation off.", min=0)
    ce_weight: float = option(1.0, min=0)
    focal_weight: float = option(1.0, min=0)
    tta: bool = option(False, "Flip test-time augmentation in the final evaluation.", negatable=True)
    keep_contempt: bool = option(False, "FER+: keep contempt as an 8th class.")
    # FER+ training targets: the annotators' vote distribution as soft targets (Barsoum et al.
    # 2016; +3.1 points of FER+ validation over the majority label, ablation J) or the majority
    # label; evaluation always scores the majority label
    ferplus_targets: str = option(
        "distribution",
        "FER+: train on the 10 annotators' vote distribution as soft targets (measured +3.1 points "
        "of validation), or on the majority label. Evaluation scores the majority label either way.",
        choices=FERPLUS_TARGETS,
    )
    votes_from: str = option(
        "",
        "Blend the annotator votes that DATASET (under --data-root) holds for the same pictures "
        "into the training targets, as FER+ does for FER-2013's; validation and tests keep the trained "
        "dataset's labels.",
        metavar="DATASET",
    )
    votes_weight: float = option(
        0.5,
        "With --votes-from: targets are (1 - W) x the picture's own label + W x the vote distribution.",
        min=0,
        max=1,
    )
    # after validation is carved from `train`: models trained with and without it share their
    # validation pictures
    train_on_valid: bool = option(
        False,
        "Also train on each dataset's own valid split (FER+'s FER2013Valid, 3,370 pictures). "
        "Validation is still carved from train, so the validation pictures do not change.",
    )
    val_fraction: float = option(0.1, min=0.01, max=0.5)  # carved from training data, stratified
    seed: int = option(0, "Seed of initial weights and batch order.")
    # fixed apart from `seed`, so that ensemble members share their validation split
    split_seed: int = option(
        0, "Seed of the validation split; keep it fixed across models you will ensemble."
    )
    time_limit_min: float = option(
        0.0, "Stop after this many minutes.", flag="--time-limit", min=0, show_default=False
    )
    name: str = option("amacnn", "Model name in its card.")
    init_from: str = option(
        "",
        "Start from these weights (a model folder or a shipped model's name) instead of random ones.",
        flag="--init",
    )
    init_member: int = option(
        -1, "With an ensemble as --init: start from this member (0 = the first).", min=0, unset=-1
    )
    teacher: str = option(
        "",
        "Distil from this model (folder or shipped name, an ensemble too): adds a soft-target loss "
        "on the same augmented batch.",
    )
    distill_weight: float = option(
        0.5, "With --teacher: share of the loss that is the soft-target term.", min=0, max=1
    )
    # softens teacher and student alike (Hinton et al. 2015)
    distill_temperature: float = option(
        2.0, "With --teacher: softmax temperature of teacher and student.", min=0, min_open=True
    )
    datasets: list[str] = field(default_factory=list)
