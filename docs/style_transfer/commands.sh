#!/bin/bash
# The README's style-transfer table (issue 11): SmolLM2-135M, Yelp both directions, all 500 test
# inputs, one sample each. Run from anywhere: bash docs/style_transfer/commands.sh
cd "$(dirname "$0")/../.." || exit 2   # the repository root
C=runs/style_transfer_cache; O=runs/style_transfer_table; mkdir -p $O
ev() { # dir name flags...
  local d=$1 n=$2; shift 2
  echo "== eval $n $d $(date +%T)"; python experiments/evaluate_style_transfer.py --direction=$d --test_limit=0 --eval_samples=1 --cache_dir=$C --output_json=$O/$n.$d.json "$@" > $O/$n.$d.log 2>&1; echo "rc=$? $(tail -n 1 $O/$n.$d.log)"
}
tr() { # dir method
  echo "== train $2 $1 $(date +%T)"; python experiments/style_transfer.py --method=$2 --direction=$1 --noevaluate_test --cache_dir=$C --workdir=$O/$2.$1 > $O/train.$2.$1.log 2>&1; echo "rc=$? $(tail -n 1 $O/train.$2.$1.log)"
  local p=$(python -c "import json;print(json.load(open('$O/$2.$1/results.json'))['best']['prompt'])")
  ev $1 $2 --prompt="$p"
}
man() { # dir
  if [ $1 = 0to1 ]; then s=positive; else s=negative; fi
  ev $1 manual --prompt="Here is some text:" --template="{prompt} \"{sentence_1}\". Here is a rewrite of the text, which is more $s: \""
}
for d in 0to1 1to0; do
  [ -f $O/null.$d.json ] || ev $d null --prompt=""
  [ -f $O/manual.$d.json ] || man $d
  tr $d pin
  tr $d rlprompt
done
echo "== done $(date +%T)"
