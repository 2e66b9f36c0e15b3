#!/usr/bin/env bash
# The paper's batch-size study (16, 32, 64), CPU-sized: same seed, same data, same number of
# patch pairs seen (4 epochs x 16,384 pairs), one thread each; prints validation loss/accuracy
# and wall time per batch size. Usage: bash benchmarks/batch_study.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/batch-study}
photos=${PHOTOS:-../shared/data/train_images}
for b in 16 32 64; do
  .venv/bin/mfif train "$photos" --out "$out/b$b" --batch "$b" --epochs 4 --patience 100 \
    --epoch-pairs 16384 --val-pairs 4096 --seed 0 --threads 1 -q
done
printf '| batch | best val loss | val accuracy | train s (4 epochs x 16,384 pairs) |\n|---:|---:|---:|---:|\n'
for b in 16 32 64; do
  .venv/bin/python - "$out/b$b/best.json" "$b" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["result"]
print(f"| {sys.argv[2]} | {c['val_loss']:.4f} | {c['val_acc']:.4f} | {c['train_seconds']:.0f} |")
PY
done
