#!/usr/bin/env bash
# Builds, here, what tools/gpu/pipeline_speed.sh needs on a lent GPU machine, whose image lacks
# Beam and scikit-image: .gpu/beam-whl (cp312 wheels of the Beam this machine runs and its
# dependencies, cryptography and cffi included: Beam imports cryptography at start) and
# .gpu/scene-heads.npz (the face patches benchmarks/scenes.py cuts from scikit-image's photos).
# Usage here: bash tools/gpu/pipeline_prepare.sh; then carry .gpu/beam-whl .gpu/scene-heads.npz.
# What the GPU image already has (numpy, pyarrow, pillow, packaging, ...) is left out so that the
# tree sent stays under 64 MiB: measured 2026-12-04, the wheels 46.8 MB beside 16.7 MB of tracked files.
set -eu
beam=$(python3 -c 'import apache_beam; print(apache_beam.__version__)')
rm -rf .gpu/beam-whl && mkdir -p .gpu/beam-whl
python3 -m pip download -q --dest .gpu/beam-whl --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  "apache-beam==$beam"
(cd .gpu/beam-whl && rm -f numpy-* pyarrow-* pillow-* packaging-* pyparsing-*)
FER_MINE_SCENE_HEADS=.gpu/scene-heads.npz python3 -c \
  'import numpy as np; from benchmarks.scenes import portrait; portrait(np.random.default_rng(0), 64)'
du -sh .gpu/beam-whl .gpu/scene-heads.npz
