#!/bin/bash
# Issue 21: greedy-decoding style transfer runs (PIN and RLPrompt, both Yelp directions, equal budget:
# 300 steps of 8 three-token prompts on 2 sentences, one greedy output per pair), their test rows
# (all 500 inputs, one greedy output) and the judge's rescoring. Run from anywhere:
#   bash docs/style_transfer/greedy/commands.sh            # ~3 h on 2 free cores
cd "$(dirname "$0")/../../.." || exit 2   # the repository root
G=docs/style_transfer/greedy; C=runs/style_transfer_cache
GREEDY="--top_k=1 --num_samples=1 --num_bootstraps=1 --eval_samples=1"
ev() { # direction name prompt
  python experiments/evaluate_style_transfer.py --direction=$1 --prompt="$3" --top_k=1 --eval_samples=1 --test_limit=0 \
    --judge --cache_dir=$C --output_json=$G/$2.$1.json > $G/$2.$1.log 2>&1; echo "eval $2 $1 rc=$?"
}
train() { # direction method
  python experiments/style_transfer.py --method=$2 --direction=$1 $GREEDY --dev_limit=0 \
    --prompts_per_step=8 --sources_per_step=2 --steps=300 --eval_every=10 --checkpoint_every=20 \
    --noevaluate_test --cache_dir=$C --workdir=$G/$2.$1 > $G/train.$2.$1.log 2>&1
  echo "train $2 $1 rc=$?"
  ev $1 $2 "$(python -c "import json;print(json.load(open('$G/$2.$1/results.json'))['best']['prompt'])")"
}
HAND_0to1="I loved this place! My glowing review:"   # the best greedy hand-written prompt on the
HAND_1to0="Negative review:"                         # training sentences (docs/style_transfer/snr)
for d in 0to1 1to0; do
  ev $d null ""
  H=HAND_$d; ev $d hand "${!H}"
  train $d pin
  train $d rlprompt
done
python experiments/rescore_style_judge.py --docs_dir=$G --rows=null,hand,pin,rlprompt \
  --norlprompt_released --output=$G/judge_rescore
