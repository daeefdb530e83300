"""Trains the ground-truth CLIP of issue #21 on synthetic coloured shapes (a few CPU minutes).

  python experiments/train_synthetic_clip.py --out=runs/synthetic_clip
  python experiments/textual_inversion.py --clip=runs/synthetic_clip/clip --image=...

Writes <out>/clip (OpenCLIP layout, what --clip of the textual-inversion launchers loads),
<out>/training.json (held-out image->caption retrieval against chance) and <out>/curves.png.
Logic lives in hpprompt.launch.synthetic_clip.
"""
import dataclasses

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import synthetic_clip as sc

D = sc.SyntheticCLIPConfig()
flags.DEFINE_string("out", D.out, "Output directory.")
for _field in dataclasses.fields(D):
  if _field.name != "out":
    _define = flags.DEFINE_float if isinstance(_field.default, float) else flags.DEFINE_integer
    _define(_field.name, _field.default, f"SyntheticCLIPConfig.{_field.name}.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(sc.run, sc.SyntheticCLIPConfig(**{f.name: getattr(FLAGS, f.name)
                                   for f in dataclasses.fields(D)}))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
