#!/usr/bin/env bash
# Issue 21 (part 3): textual inversion with ground truth. Trains a small CLIP on synthetic coloured
# shapes, then PIN, RLPrompt and PEZ invert held-out renders at the same budget (prompts scored by
# the CLIP) for 3 seeds; the report (recovery.md / .json, contact sheet, training curves) goes to
# docs/textual_inversion/. Run from the repo root:
#
#   bash benchmarks/run_issue21_ti.sh
#   OUT=/tmp/issue21 bash benchmarks/run_issue21_ti.sh      # run directories elsewhere
#
# Duration on a 2-core VM shared with other jobs (load ~8): ~4 min for the CLIP (600 steps),
# ~30 min for the 9 searches of 8 targets (agents dominate: ~2 s a step with SmolLM2-135M as policy).
# Interrupted, it continues: the CLIP is kept once trained, finished searches are read back and
# the unfinished one resumes. The CLIP weights (~13 MB) stay in $OUT (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/issue21_ti}
DOCS=docs/textual_inversion
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
start=$(date +%s)

if [[ ! -f "$OUT/synthetic_clip/training.json" ]]; then
  nice "$PYTHON" experiments/train_synthetic_clip.py --out="$OUT/synthetic_clip" \
    --seed=0 --train_images=2000 --heldout_images=360 --patch_size=8 --width=64 --layers=2 \
    --steps=600 --learning_rate=0.003
fi
echo "CLIP: $(( $(date +%s) - start )) s"
mkdir -p "$DOCS"
cp "$OUT/synthetic_clip/training.json" "$OUT/synthetic_clip/curves.png" "$DOCS/"
nice "$PYTHON" experiments/ti_recovery.py --clip="$OUT/synthetic_clip/clip" --out="$DOCS" \
  --runs_dir="$OUT/recovery" --methods=pin,rlprompt,pez --seeds=0,1,2 --targets=8 \
  --prompt_length=4 --agent_steps=15 --prompts_per_step=16 --evaluations=5 --pez_init=uniform
echo "total: $(( $(date +%s) - start )) s"
