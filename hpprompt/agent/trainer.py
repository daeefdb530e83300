"""The agent's training loop on any task (RLPrompt `Trainer`, PIN's best-prompt tracking).

Each step: sample prompts -> task rewards (`hpprompt.tasks.base.PromptTask`) -> shape -> learn. Every
`eval_every` steps the greedy prompt is scored on the validation set and the best prompts are kept
(RLPrompt left that to its users, issue #12; PIN writes them sorted to a csv). Checkpoints every
`checkpoint_every` steps; Ctrl-C saves the last finished step and exits; `resume` continues exactly.
With a starting prompt (`AgentConfig.init_prompt`) a new run first warms the head up to it
(`PromptAgent.warm_start`), scores it on the validation set and logs it as step 0: it is the best
prompt until a greedy prompt scores higher (ties keep it).
"""
import dataclasses
import time

import numpy as np

from hpprompt.agent.agent import AgentState
from hpprompt.agent.agent import PromptAgent
from hpprompt.tasks.base import PromptTask
from hpprompt.training.run import Interrupted  # noqa: F401  (re-exported for launchers)
from hpprompt.training.run import Run
from hpprompt.training.run import all_finite
from hpprompt.training.run import check_finite
from hpprompt.training.run import stop_on_sigint


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  steps: int
  eval_every: int = 10
  log_every: int = 1
  seed: int = 0


def _templates(state: AgentState) -> dict:
  trees = {"train": state.train}
  if state.buffer is not None:
    trees["buffer"] = state.buffer
  return trees


def evaluate_greedy(agent: PromptAgent, state: AgentState, task: PromptTask) -> tuple[str, float]:
  prompt = agent.decode(agent.greedy(state).tokens)[0]
  return prompt, float(task.validate([prompt])[0])


def train(agent: PromptAgent, task: PromptTask, run: Run, cfg: TrainConfig) -> dict:
  """Runs (or resumes) training; returns the final results (also written to results.json)."""
  state = agent.init(cfg.seed)
  restored = run.restore(_templates(state))
  if restored is not None:
    state = agent.place(state.replace(**restored))
    task.load_memo_state(run.meta.get("task_memo"))
  elif agent.init_rollout is not None:
    state = _start_from_prompt(agent, state, task, run)
  step = run.start_step
  with stop_on_sigint(run) as stop:
    try:
      _loop(agent, task, run, cfg, state, step, stop)
    except KeyboardInterrupt:
      raise Interrupted(run.saved_step) from None
  results = {"steps": cfg.steps, "train_seconds": run.train_seconds(), "best": run.prompts.best,
             "top_prompts": run.prompts.records}
  best = run.prompts.best
  if best is not None:
    run.write_results(results)      # the prompts are kept even if the test evaluation fails
    test = task.evaluate(best["prompt"])
    results.update(test)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    run.print(f"best prompt {best['prompt']!r}: {task.validation_metric} {best['score']:.4f}"
              + (f", {shown}" if shown else ""))
  return results


def _start_from_prompt(agent: PromptAgent, state: AgentState, task: PromptTask, run: Run):
  """Warm start, then the starting prompt scored on dev as step 0 (the best prompt so far)."""
  state, info = agent.warm_start(state)
  prompt, score = evaluate_greedy(agent, state, task)
  if prompt != agent.cfg.init_prompt:      # `warm_start.cloned` guarantees it
    raise RuntimeError(f"the warmed-up greedy prompt {prompt!r} is not {agent.cfg.init_prompt!r}")
  run.prompts.add(prompt, score, 0)
  run.log(0, {"greedy_prompt": prompt, task.validation_metric: score,
              "warm_start_steps": info["warm_start_steps"],
              "init_token_prob": min(info["init_token_probs"])})
  run.print(f"starting prompt {prompt!r}: {task.validation_metric} {score:.4f} (greedy after "
            f"{info['warm_start_steps']} behaviour-cloning steps; sampled with probability "
            + ", ".join(f"{p:.2f}" for p in info["init_token_probs"]) + " per token)")
  return state


def _loop(agent, task, run, cfg, state, step, stop) -> None:
  try:
    while step < cfg.steps:
      t0 = time.time()
      new_state, rollout = agent.sample(state)     # `state` stays the last finished step's
      prompts = agent.decode(rollout.tokens)
      t1 = time.time()
      rewards = task.step_rewards(prompts, step)
      raw = np.asarray(rewards.raw)
      check_finite(step + 1, run, reward=raw)
      t2 = time.time()
      new_state, metrics = agent.learn(new_state, rollout, raw, groups=rewards.groups,
                                       shaped=rewards.shaped)
      # Non-finite guard: stop before this step is logged, evaluated or saved (Issue 12).
      check_finite(step + 1, run, loss=metrics.get("loss", 0.0),
                   gradient_norm=metrics.get("grad_norm", 0.0),
                   policy_parameters=all_finite(new_state.train.params))
      state, step = new_state, step + 1
      t3 = time.time()
      best_i = int(np.argmax(raw))
      record = {**metrics, "raw_reward": float(raw.mean()), "max_reward": float(raw[best_i]),
                **rewards.metrics, "sampled_best": prompts[best_i],
                "time_sample": t1 - t0, "time_reward": t2 - t1, "time_learn": t3 - t2}
      if step % cfg.eval_every == 0 or step == cfg.steps:
        prompt, score = evaluate_greedy(agent, state, task)
        run.prompts.add(prompt, score, step)
        record.update({"greedy_prompt": prompt, task.validation_metric: score})
      run.log(step, record)
      if step % cfg.log_every == 0 or step == cfg.steps:
        run.progress(step, reward=record["raw_reward"], **rewards.metrics,
                     loss=record.get("loss", f"- (buffer {record.get('buffer', 0)})"))
      run.maybe_save(step, _templates(state), {"task_memo": task.memo_state()})
      if stop["stop"] and step < cfg.steps:
        run.save(step, _templates(state), {"task_memo": task.memo_state()})
        run.print(f"stopped: saved step {step} in {run.workdir}; continue with --resume")
        raise KeyboardInterrupt
  except KeyboardInterrupt:
    if run.saved_step != step:
      try:   # an interrupt mid-step: the last finished step, if its buffers are still alive
        run.save(step, _templates(state), {"task_memo": task.memo_state()})
        run.print(f"interrupted: saved step {step} in {run.workdir}; continue with --resume")
      except Exception:  # noqa: BLE001  (an update that donated them was cut short)
        run.print(f"interrupted mid-step; the last checkpoint is step {run.saved_step}")
    raise
