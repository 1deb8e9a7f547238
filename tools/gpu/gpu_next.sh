#!/usr/bin/env bash
# The next lent-GPU training step towards the accuracy goals (71.0% FER-2013 PrivateTest, 84.0% FER+ test), ready to run: one call per dataset, eight runs side by side
# (tools/gpu/gpu_train.sh does the work; docs/ablations.md, ablations P, R, S and T, say why).
#   bash tools/gpu/gpu_next.sh fer2013 6.5   # carry .gpu/whl .gpu/fer2013-train.tar.xz .gpu/ferplus-linked.tar.xz
#   bash tools/gpu/gpu_next.sh ferplus 3     # the same carry
# FER-2013: cycles from the shipped soup with Adam (the lineage's optimizer: weight decay as an L2
# gradient) and AdamW (decoupled decay) at equal seeds, and a pair from scratch that differs only in
# the optimizer. The pair asks whether the channels Adam's L2 switches off cost accuracy: a cycle
# from the soup cannot tell, since its 293 dead channels have all-zero weights in and out, so no
# gradient reaches them under either optimizer (ablation T). FER+: cycles with and without
# --train-on-valid, each with both optimizers. Back here: score with `fer-mine compare
# amacnn-<dataset> ... --other-labels`, soup what validation picks (`fer-mine ensemble --soup`),
# then `fer-mine quantize`.
# The teacher is the shipped soup itself: as accurate on validation as .gpu/teacher3 (72.77% with
# flip, both), a third of its cost per step, and nothing to carry. The tree sent is at most 64 MiB:
# in commit b67d033 the repository took 15.7 MiB and the three carried paths 45.9 MiB (61.6 MiB), after
# the ablation cards in docs/ were stored without indentation (-2.5 MB) and the wheels lost pygments.
set -u
dataset=$1; minutes=$2
common="--preset cpu --schedule cosine --warmup-epochs 1 --label-smoothing 0.1 --batch-size 256 \
  --epochs 400 --patience 400 --split-seed 0"
case $dataset in
  fer2013)
    T="$common --teacher amacnn-fer2013 --votes-from ferplus --votes-weight 0.3"
    C="$T --init amacnn-fer2013 --lr 4e-4"
    S="$T --lr 3e-3 --warmup-epochs 2 --seed 131"  # from scratch, as ablation M's kdS
    set -- A1="$C --seed 111" A2="$C --seed 112" A3="$C --seed 113" \
      W1="$C --optimizer adamw --seed 111" W2="$C --optimizer adamw --seed 112" \
      W3="$C --optimizer adamw --seed 113" S1="$S" S2="$S --optimizer adamw" ;;
  ferplus)
    C="$common --init amacnn-ferplus --teacher amacnn-ferplus --ferplus-targets distribution"
    set -- A1="$C --lr 1e-3 --seed 121" A2="$C --lr 5e-4 --seed 122" \
      V1="$C --lr 1e-3 --seed 121 --train-on-valid" V2="$C --lr 5e-4 --seed 122 --train-on-valid" \
      W1="$C --lr 1e-3 --seed 121 --optimizer adamw" W2="$C --lr 5e-4 --seed 122 --optimizer adamw" \
      X1="$C --lr 1e-3 --seed 121 --optimizer adamw --train-on-valid" \
      X2="$C --lr 5e-4 --seed 122 --optimizer adamw --train-on-valid" ;;
  *) echo "usage: bash tools/gpu/gpu_next.sh fer2013|ferplus MINUTES"; exit 2 ;;
esac
exec bash tools/gpu/gpu_train.sh "$dataset" "$minutes" "$@"
