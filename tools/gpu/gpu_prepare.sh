#!/usr/bin/env bash
# Builds .gpu/ (git-ignored) for tools/gpu/gpu_train.sh on the `device` tool: the cp312 wheels the
# GPU image lacks (it has torch, OpenCV, numpy, pyarrow) and a dataset's training pictures
# (tools/gpu/gpu_dataset.py). Usage here: bash tools/gpu/gpu_prepare.sh DATA_ROOT DATASET, then
# carry .gpu in the run call. The tree sent is at most 64 MiB. Measured in commit 29f30e6: tracked
# files 15.5 MiB, these wheels 9.2 MiB (the matplotlib stack, WITH_MATPLOTLIB=1, 24 MB more),
# FER-2013's training pictures 32.5 MiB (the whole dataset, 42 MB, would not fit). FER+'s are
# 40.1 MiB (commit 23b6b85): carry .gpu/whl and .gpu/ferplus-train.tar.xz alone, not the whole .gpu.
# Since commit bc31f39 `python3 tools/gpu/gpu_dataset.py ROOT ferplus --pictures-from fer2013` writes FER+
# as links to FER-2013's pictures (5.5 MiB, its valid split included): carry it beside FER-2013's.
set -eu
root=$1; dataset=$2
# rich without pygments and markdown-it: fer-mine prints no highlighted code or markdown (checked in
# commit b67d033: `train` runs with both blocked), and the 1.4 MB they take keep the tree under 64 MiB
wheels="kornia kornia_rs safetensors click rich"
[ -z "${WITH_MATPLOTLIB:-}" ] || wheels="$wheels matplotlib contourpy cycler fonttools kiwisolver pyparsing python-dateutil six pillow packaging"
rm -rf .gpu/whl && mkdir -p .gpu/whl
# shellcheck disable=SC2086
python3 -m pip download -q --dest .gpu/whl --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 $wheels
[ -f .gpu/"$dataset"-train.tar.xz ] || python3 tools/gpu/gpu_dataset.py "$root" "$dataset"
du -sh .gpu/whl .gpu/"$dataset"-train.tar.xz
git ls-files -z | xargs -0 du -cb | tail -n 1 | awk '{printf "tracked files: %.1f MB\n", $1 / 1e6}'
