"""The training recipe: every option of `fer-mine train` and its default, in one place.

Kept apart from `train` (which imports torch) so that the CLI can show the defaults without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("constant", "cosine")
FERPLUS_TARGETS = ("majority", "distribution")
OPTIMIZERS = ("adam", "adamw")
# `fer-mine quantize`: quantisation-aware fine-tuning steps (amacnn/quantize.py); 0 is a static
# calibration. Chosen on amacnn-fer2013's validation split (README, Benchmarks: session 12).
QAT_STEPS = 300


@dataclass
class TrainOptions:
    """Defaults are the paper's recipe; every other value is an option we measured. FER+ (which
    the paper does not use) trains on its vote distributions by default, as measured best."""

    preset: str = "cpu"
    epochs: int = 45
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    # adam: the decay as an L2 term of the gradient (the paper's), which Adam's scaling lets switch
    # BatchNorm channels off (293 of amacnn-fer2013's 1,440 scales are 0, ablation R); adamw:
    # decoupled decay (Loshchilov & Hutter 2019), a fixed share of each weight per step
    optimizer: str = "adam"
    patience: int = 10  # early stopping: epochs without a better validation accuracy
    val_fraction: float = 0.1  # carved from training data, stratified
    seed: int = 0  # initial weights, batch order, augmentation
    split_seed: int = 0  # validation split: fixed apart from `seed`, so ensemble members share it
    ce_weight: float = 1.0
    focal_weight: float = 1.0
    label_smoothing: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0
    mixup: float = 0.0  # Beta(alpha, alpha) mixing; 0 = off
    augment: float = 1.0  # augmentation strength; 0 = off
    tta: bool = False  # horizontal-flip test-time augmentation when evaluating
    keep_contempt: bool = False
    # FER+ training targets: the annotators' vote distribution as soft targets (Barsoum et al.
    # 2016; +3.1 points of FER+ validation over the majority label, ablation J) or the majority
    # label; evaluation always scores the majority label
    ferplus_targets: str = "distribution"
    # another dataset's annotator votes for the same pictures (FER+ for FER-2013's), blended into
    # the targets: (1 - votes_weight) x own label + votes_weight x vote distribution. Validation and
    # tests keep the trained dataset's own labels
    votes_from: str = ""
    votes_weight: float = 0.5
    # also train on each dataset's own `valid` split (FER+ has one; validation is still carved from
    # `train`, so models trained with and without it share their validation pictures)
    train_on_valid: bool = False
    time_limit_min: float = 0.0  # stop after the epoch that passes this; 0 = no limit
    name: str = "amacnn"
    init_from: str = ""  # start from these weights (a model folder) instead of random ones
    init_member: int = -1  # with an ensemble as init_from: start from this member (0-based)
    teacher: str = ""  # distil from this model (folder or shipped name; an ensemble too)
    distill_weight: float = 0.5  # share of the loss that is the soft-target term
    distill_temperature: float = 2.0  # softens teacher and student alike (Hinton et al. 2015)
    datasets: list[str] = field(default_factory=list)
