#!/usr/bin/env bash
# Prints, on a lent GPU machine, its cores (lscpu) and the `fer-mine run` throughput table:
# in-process, `auto`, and 2, 4, 8, 12, 16 workers as threads and as processes, on PHOTOS scenes
# of 1600x1200 (benchmarks/pipeline_speed.py). Needs .gpu/beam-whl and .gpu/scene-heads.npz
# carried (tools/gpu/pipeline_prepare.sh builds them). Usage there:
#   bash tools/gpu/pipeline_speed.sh [PHOTOS] [WORKERS]     # 400 and auto,1,2,4,8,12,16: about 7 minutes
# The table comes back as $OUT/pipeline-speed.txt.
set -u
photos=${1:-400}; workers=${2:-auto,1,2,4,8,12,16}
out=${OUT:-/tmp/out}; mkdir -p "$out"
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/beam-whl/*.whl || exit 1
mkdir -p /tmp/pkg && ln -sfn "$PWD" /tmp/pkg/fer_mine
export PYTHONPATH=/tmp/site:/tmp/pkg:$PWD PYTHONUNBUFFERED=1 FER_MINE_SCENE_HEADS=$PWD/.gpu/scene-heads.npz
{
  lscpu | grep -E '^(CPU\(s\)|Thread|Core|Socket|Model name)'
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true
  python3 -m benchmarks.pipeline_speed --photos "$photos" --workers "$workers" --no-4n
} 2>&1 | grep -v "apitools not found" | tee "$out/pipeline-speed.txt"
