"""PEZ's textual inversion loop for one target image (textual inversion's `--method=pez`).

The step is `gradient.pez.PEZ.train_step` on a `tasks.clip_task.CLIPPromptTask`: the loss
1 - cos at the projected prompt, AdamW on the continuous prompt (baselines.md §2.2). Every
`eval_every` steps the projection is decoded and the string is scored by the same `CLIPScorer` as
the agent's prompts (what a user of the prompt gets); the best string is kept, as PEZ keeps its
best projected prompt. Checkpoints, Ctrl-C and --resume as `hpprompt.gradient.loop`. The PEZ
settings come built (`launch.textual_inversion.pez_config` checks the flags).
"""
import dataclasses
import time

import numpy as np

from hpprompt.gradient import pez
from hpprompt.tasks.clip_task import CLIPPromptTask
from hpprompt.training import sharding
from hpprompt.training.run import Interrupted
from hpprompt.training.run import Run
from hpprompt.training.run import stop_on_sigint


class PEZSearch:
  """One PEZ method on the CLIP text tower, reused for every target.

  `cfg` holds the loop's settings (`steps`, `eval_every`, `log_every`, `seed`: the launcher's
  config), `method_cfg` the PEZ settings.
  """

  def __init__(self, cfg, method_cfg: pez.PEZConfig, scorer, mesh):
    self.cfg, self.scorer = cfg, scorer
    self.task = CLIPPromptTask(scorer.model, scorer.tokenizer, mesh=mesh)
    self.method = pez.PEZ(self.task, method_cfg)

  def record(self) -> dict:
    return dataclasses.asdict(self.method.cfg)

  def _save(self, run: Run, step: int, state) -> None:
    run.save(step, {"train": state})

  def train(self, run: Run, target: np.ndarray) -> dict:
    cfg, method = self.cfg, self.method
    batch = self.task.batch(np.asarray(target)[None], method.cfg.prompt_length)
    state = method.init(cfg.seed)
    restored = run.restore({"train": state})
    if restored is not None:
      state = method.place(restored["train"])
    step = int(state.step)
    with stop_on_sigint(run) as stop:
      try:
        while step < cfg.steps:
          t0 = time.time()
          state, metrics = method.train_step(state, batch)
          step += 1
          record = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                    "clip_score_ids": float(metrics["clip_score"]), "time_step": time.time() - t0}
          if step % cfg.eval_every == 0 or step == cfg.steps:
            hard = method.hard_prompt(state.params)
            score = float(self.scorer.scores([hard["prompt"]], np.asarray(target)[None])[0, 0])
            state, _ = method.record_best(state, score)
            run.prompts.add(hard["prompt"], score, step)
            record.update(prompt=hard["prompt"], clip_score=score, round_trip=hard["round_trip"])
          run.log(step, record)
          if step % cfg.log_every == 0 or step == cfg.steps:
            run.progress(step, loss=record["loss"], clip_score=record["clip_score_ids"])
          run.maybe_save(step, {"train": state})
          if stop["stop"] and step < cfg.steps:
            self._save(run, step, state)
            run.print(f"stopped: saved step {step} in {run.workdir}; continue with --resume")
            raise KeyboardInterrupt
      except KeyboardInterrupt:
        if run.saved_step != step:
          self._save(run, step, state)
          run.print(f"interrupted: saved step {step} in {run.workdir}; continue with --resume")
        raise Interrupted(run.saved_step) from None
    best = run.prompts.best
    if best is not None:
      run.print(f"best prompt {best['prompt']!r}: clip_score {best['score']:.4f}")
    return {"steps": cfg.steps, "train_seconds": run.train_seconds(), "best": best,
            "top_prompts": run.prompts.records, "best_step": int(state.best_step),
            "final_ids": [int(i) for i in sharding.to_host(method.ids(state.params))]}
