"""Test accuracy and perplexity of given prompts (manual prompts, prompts from papers, learned ones).

  python experiments/evaluate_prompt.py --prompt=" It was"                  # SmolLM2, SST-2 test
  python experiments/evaluate_prompt.py --prompt="Absolutely VERY absolute VERY absolute" \
      --task_lm=roberta-large --dataset=sst-2 --reference_lm=gpt2
"""
from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import evaluate
from hpprompt.launch import run_flags

flags.DEFINE_multi_string("prompt", None, "Prompt string (repeat the flag for several).")
flags.DEFINE_string("dataset", "sst-2", "Data set: bundled name, your own data (CSV/TSV/JSONL "
                    "file or folder) or tfds:NAME.")
flags.DEFINE_integer("dataset_seed", 0, "Few-shot split 0-4 (for train/dev); --shots: the draw.")
flags.DEFINE_string("data_dir", None, "Few-shot data root (default: bundled).")
flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "Split to score.")
flags.DEFINE_string("task_lm", "smollm2", "Task LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_string("template", None, "Template (default: the data set's).")
flags.DEFINE_list("verbalizers", None, "Comma-separated verbalizers.")
flags.DEFINE_bool("calibrate", False, "Contextual calibration (Zhao et al. 2021) of the scores.")
flags.DEFINE_string("reference_lm", None, "Causal LM for prompt perplexity (default: task LM).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Parameter dtype.")
flags.DEFINE_string("output", None, "Write the results to this JSON file.")
run_flags.define_data()
FLAGS = flags.FLAGS


def _main():
  cfg = evaluate.EvalConfig(
      prompts=tuple(FLAGS.prompt or ()), dataset=FLAGS.dataset, dataset_seed=FLAGS.dataset_seed,
      data_dir=FLAGS.data_dir, split=FLAGS.split, task_lm=FLAGS.task_lm, template=FLAGS.template,
      verbalizers=tuple(FLAGS.verbalizers) if FLAGS.verbalizers else None,
      calibrate=FLAGS.calibrate, reference_lm=FLAGS.reference_lm, dtype=FLAGS.dtype,
      output=FLAGS.output, **run_flags.data_values())
  for r in evaluate.run(cfg):
    ppl = "n/a" if r["perplexity"] is None else f"{r['perplexity']:.2f}"
    cal = ", calibrated" if r["calibrated"] else ""
    print(f"{r['prompt']!r}: {r['split']} accuracy {r['accuracy']:.4f} on {r['examples']} "
          f"examples ({r['task_lm']}{cal}), perplexity {ppl} ({r['reference_lm']})")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(_main)       # every error: one line, exit 2 (--debug: traceback)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
