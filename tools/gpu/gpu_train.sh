#!/usr/bin/env bash
# Trains several AMACNN configurations in parallel on one lent GPU (the `device` tool).
# Usage there: bash tools/gpu/gpu_train.sh DATASET MINUTES NAME="train options" ...
# Needs .gpu/whl and .gpu/<DATASET>-train.tar.xz (or -linked.tar.xz, beside the tarball it links
# to) carried; tools/gpu/gpu_prepare.sh and gpu_dataset.py build them. Training pictures
# only, so the runs print no test figures: score them back here with `fer-mine evaluate --record`.
# Results come back in $OUT/<NAME>.tar.gz, one per run so each stays under the tool's 16 MiB a file
# (model.json, model.safetensors, history.csv, plots, log; never the checkpoint).
set -u
dataset=$1; minutes=$2; shift 2
out=${OUT:-/tmp/out}
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
mkdir -p /tmp/pkg /tmp/data /tmp/runs && ln -sfn "$PWD" /tmp/pkg/fer_mine
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
# the datasets carried: pictures (gpu_dataset.py), and trees linked to another's copies (--pictures-from)
for pictures in .gpu/*-train.tar.xz; do
  [ -f "$pictures" ] && { tar xf "$pictures" -C /tmp/data || exit 1; }
done
for linked in .gpu/*-linked.tar.xz; do
  [ -f "$linked" ] || continue
  name=$(basename "$linked" -linked.tar.xz)
  rm -rf /tmp/data/"$name"  # links left by an earlier call on a warm machine
  tar xf "$linked" -C /tmp/data || exit 1
  python3 -c 'import csv, os, sys
for own, copy in csv.reader(open(os.path.join(sys.argv[1], "pictures.csv"))):
    os.symlink(os.path.join("/tmp/data", copy), os.path.join(sys.argv[1], own))' /tmp/data/"$name" || exit 1
done
[ -d /tmp/data/"$dataset" ] || { echo "no .gpu/$dataset-train.tar.xz or -linked.tar.xz carried"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for spec in "$@"; do
  name=${spec%%=*}; opts=${spec#*=}
  # shellcheck disable=SC2086
  python3 -m fer_mine.cli train --data-root /tmp/data --datasets "$dataset" --output /tmp/runs/"$name" \
    --name "$name" --threads 3 --time-limit "$minutes" $opts >/tmp/runs/"$name".log 2>&1 &
done
save() {
  for spec in "$@"; do
    name=${spec%%=*}
    [ -d /tmp/runs/"$name" ] || continue
    tar czf "$out/$name.tmp" --exclude=checkpoint.pt -C /tmp/runs "$name" "$name.log" && mv "$out/$name.tmp" "$out/$name.tar.gz"
  done
}
(while sleep 45; do save "$@"; done) &
saver=$!
wait $(jobs -p | grep -v "^$saver$")
kill $saver; save "$@"
for log in /tmp/runs/*.log; do echo "== $log"; grep -v "^epoch" "$log" | tail -n 12; grep "^epoch" "$log" | tail -n 3; done
