#!/usr/bin/env bash
# Issue 22: hpprompt's training step vs the official RLPrompt / PIN step (rebuilt in torch), both
# timed in one run on this machine, roberta-base rows. Run it on a quiet machine from the repo root:
#
#   bash benchmarks/run_issue22.sh            # the table for README / benchmarks/README.md
#   bash benchmarks/run_issue22.sh --tiny     # 2-layer models: checks the scripts (~10 min loaded)
#   STEPS=1 bash benchmarks/run_issue22.sh    # fewer timed steps if time is short
#
# Per row: one warm-up step and STEPS (default 2) timed steps on each side, in their own processes.
# Estimated duration on an idle 2-core VM, model building excluded: about 8-10 min. Basis: the
# official reward executes about 9.2 TFLOP a step for roberta-base (16 prompts x 32 sentences,
# each prompt's batch padded to its longest, the 49k-token MLM head at every position; counted from
# the padded lengths of a --tiny run, which uses the same tokenizer), i.e. roughly 30-40 s a step at
# 50-60% of a ~480 GFLOP/s matmul peak, PIN's learner adds two top-10,000 selections and two
# sorts of 1280 x 49,157 logits, and hpprompt's side is about 1-1.5 min a row with its compilation.
# The script prints the elapsed time of each row and of the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
MODEL_DIR=${MODEL_DIR:-/tmp/hpprompt_paper_models}
STEPS=${STEPS:-2}
TINY="" TINY_PY=False
if [[ "${1:-}" == "--tiny" ]]; then TINY="--tiny" TINY_PY=True; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# Random-weight models of the real sizes (built once, not timed).
(cd benchmarks && "$PYTHON" -c "
import paper_models
for name in ('distilgpt2', 'opt-125m', 'roberta-base'):
  print(paper_models.build(name, '$MODEL_DIR', tiny=$TINY_PY))
")
echo "estimated: about 8-10 min on an idle 2-core VM, model building excluded (basis: top of this script)"
echo "start: $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
"$PYTHON" benchmarks/agent_bench.py --paper=rlprompt-base,pin-base --model_dir="$MODEL_DIR" \
  --steps="$STEPS" $TINY
echo "end: $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "$(( $(date +%s) - start )) s in all"
