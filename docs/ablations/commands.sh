#!/bin/bash
# PIN ablations: one setting of the CPU defaults changed per arm, on a results-grid cell where PIN's
# prompt trails the calibrated manual prompt (that grid cell, runs/grid/DATASET/pin_seedK, is the
# unchanged arm). Seed K is the run seed and the few-shot split, as in the grid.
#   bash docs/ablations/commands.sh sst-2 1          # all four arms: about 20 min on an idle 2-core CPU
#   bash docs/ablations/commands.sh mr 0 k1000       # only the arms named (as run for the README)
#   bash docs/ablations/commands.sh cr 0 k1000
#   python experiments/report.py --runs='runs/grid/sst-2/pin_seed1,runs/ablate/sst-2_seed1/*,runs/grid/mr/pin_seed0,runs/ablate/mr_seed0/*,runs/grid/cr/pin_seed0,runs/ablate/cr_seed0/*' \
#       --out=docs/ablations/report
set -e
DATASET=${1:?dataset}; SEED=${2:?seed}; shift 2; ARMS=" $* "
OUT=${OUT:-runs/ablate}/${DATASET}_seed${SEED}
run() {  # run NAME LABEL FLAGS...: skipped when finished or not asked for, resumed when interrupted
  local name=$1 label=$2; shift 2
  if [ "$ARMS" != "  " ] && [[ "$ARMS" != *" $name "* ]]; then return; fi
  if grep -qs test_accuracy "$OUT/$name/results.json"; then return; fi
  local resume=""; [ -d "$OUT/$name/checkpoints" ] && resume=--resume
  python experiments/fewshot_classification.py --method=pin --dataset="$DATASET" --seed="$SEED" \
      --dataset_seed="$SEED" --workdir="$OUT/$name" --label="$label" $resume "$@"
}
run k1000     "pin k=1,000"          --filter_top_k=1000      # filter: the LM's top 1,000 tokens
run length5   "pin 5 tokens"         --prompt_length=5        # the papers' prompt length
run replay128 "pin replay batch 128" --replay_batch=128       # 4x the replay batch
run steps400  "pin 400 steps"        --steps=400              # 2x the steps
