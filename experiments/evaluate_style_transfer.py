"""Score text style transfer outputs, or a manual prompt, with the offline evaluator.

  python experiments/evaluate_style_transfer.py --outputs=runs/st/out.txt --direction=0to1
  python experiments/evaluate_style_transfer.py --rlprompt_outputs --direction=1to0  # RLPrompt's
  python experiments/evaluate_style_transfer.py --prompt="Here is the text rewritten positively:"

The outputs file has one line per test input, aligned with them. Metrics: Content, Style, J(C,S),
GM(C,S) (+ Fluency, J, GM with --fluency_classifier), BLEU, BERTScore vs references, PPL;
--judge adds Style (judge), scored by a separate classifier (hpprompt/tasks/style_judge.py).
"""
import dataclasses
import json

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import style_transfer
from hpprompt.tasks import style_data

D = style_transfer.EvaluateConfig()
flags.DEFINE_string("outputs", None, "Outputs file, one line per test input.")
flags.DEFINE_bool("rlprompt_outputs", False, "Score RLPrompt's released Yelp outputs (bundled).")
flags.DEFINE_string("prompt", None, "A prompt to generate the outputs with (the test protocol).")
flags.DEFINE_string("template", D.template,
                    "Generation template for --prompt: starts with {prompt}, has {sentence_1}.")
flags.DEFINE_string("task", D.task, "yelp or shakespeare.")
flags.DEFINE_string("direction", D.direction, "0to1 or 1to0.")
flags.DEFINE_integer("dataset_seed", D.dataset_seed, "Shakespeare split 0-2.")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM (for --prompt; the default PPL LM).")
flags.DEFINE_string("content_lm", None, "BERTScore encoder (default: the task LM).")
flags.DEFINE_integer("content_layer", D.content_layer, "BERTScore layer.")
flags.DEFINE_string("style_classifier", None, "HF sequence classifier (default: trained head).")
flags.DEFINE_integer("classifier_pool", D.classifier_pool, "Sentences per style for that head.")
flags.DEFINE_string("fluency_classifier", None, "HF acceptability classifier (label 0 = ok).")
flags.DEFINE_string("ppl_lm", None, "Perplexity LM (default: the task LM).")
flags.DEFINE_string("cache_dir", "runs/style_transfer_cache", "Classifier / baseline cache.")
flags.DEFINE_integer("eval_samples", D.eval_samples, "Samples per input for --prompt (paper 32).")
flags.DEFINE_integer("top_k", D.top_k, "Top-k sampling for --prompt (paper 10); 1: greedy, 0: the "
                     "full distribution.")
flags.DEFINE_integer("test_limit", 0, "Score only the first N inputs (0: all).")
flags.DEFINE_string("output_json", None, "Write the metrics (and outputs) to this JSON file.")
flags.DEFINE_bool("judge", False, "Also report Style (judge): the separate test judge of "
                  "hpprompt/tasks/style_judge.py (Yelp).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Parameter dtype of the LMs.")
FLAGS = flags.FLAGS


def config_from_flags() -> style_transfer.EvaluateConfig:
  outputs = FLAGS.outputs
  if FLAGS.rlprompt_outputs:
    for other in ("outputs", "prompt"):
      if getattr(FLAGS, other) is not None:
        raise cli.FlagError("rlprompt_outputs", f"scores RLPrompt's bundled outputs; give either "
                            f"it or --{other}, not both.")
    outputs = style_data.rlprompt_outputs(FLAGS.direction)
  names = ("prompt", "template", "task", "direction", "dataset_seed", "task_lm", "content_lm",
           "content_layer", "style_classifier", "classifier_pool", "fluency_classifier", "ppl_lm",
           "cache_dir", "eval_samples", "test_limit", "top_k", "output_json", "dtype", "judge")
  return dataclasses.replace(D, outputs=outputs, **{n: getattr(FLAGS, n) for n in names})


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  results = cli.run_main(lambda: style_transfer.evaluate(config_from_flags()))
  print(json.dumps({k: v for k, v in results.items() if k != "components"}, indent=1))
  print("components:", json.dumps(results["components"]))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
