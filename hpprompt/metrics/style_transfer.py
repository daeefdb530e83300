"""Text style transfer metrics as RLPrompt's released evaluator defines them (`tst_evaluator.py`).

Per output sentence i: content c_i = 100 max(BERTScore-F1(output_i, source_i), 0) (rescaled with
baseline), style s_i = 1 if the classifier's argmax is the target style, fluency f_i = 1 if the
acceptability classifier says acceptable. Aggregates (each rounded to 0.1 like the evaluator):
Content = mean c, Style = 100 mean s, Fluency = 100 mean f, J = mean c_i s_i f_i,
GM = (Content Style Fluency)^(1/3) of the rounded aggregates, BLEU = mean sacrebleu `sentence_bleu`
against the references, BERTScore = 100 mean max(F1(output, reference), 0), PPL = exp(sum_i n_i
nll_i / sum_i n_i) with n_i the sentence's tokens and nll_i its mean next-token NLL without a start
token (the evaluator's `labels=input_ids` loss times length; sentences with no predicted token are
skipped). Without an acceptability classifier, Fluency, J and GM are None and J(C,S) / GM(C,S) over
content and style only are reported instead.
"""
import numpy as np

from hpprompt.metrics import perplexity


def joint_score(content, style_correct, fluency_correct=None) -> float:
  """mean_i c_i s_i f_i (f omitted when None)."""
  terms = np.asarray(content, np.float64) * np.asarray(style_correct, np.float64)
  if fluency_correct is not None:
    terms = terms * np.asarray(fluency_correct, np.float64)
  return float(terms.mean())


def geometric_mean(*aggregates: float) -> float:
  """exp(mean(log x)), as the evaluator (0 when any aggregate is 0)."""
  with np.errstate(divide="ignore"):
    return float(np.exp(np.mean(np.log(np.asarray(aggregates, np.float64)))))


def mean_sentence_bleu(outputs: list[str], references: list[str]) -> float:
  import sacrebleu  # noqa: PLC0415  (metrics extra)
  return float(np.mean([sacrebleu.sentence_bleu(o, [r]).score
                        for o, r in zip(outputs, references)]))


def corpus_perplexity(model, tokenizer, texts: list[str]) -> float:
  """Token-weighted perplexity of sentences under a causal LM (the evaluator's PPL); NaN when no
  sentence has a predicted token (all of one token or empty)."""
  nll, count = perplexity.prompt_nll(model, tokenizer, texts, bos=False)
  ok = np.isfinite(nll) & (count > 0)
  if not ok.any():
    return float("nan")    # no sentence has a predicted token: undefined (no NumPy warning)
  lengths = count + 1
  return float(np.exp((lengths[ok] * nll[ok]).sum() / lengths[ok].sum()))


def content_scores(scorer, outputs: list[str], others: list[str]) -> np.ndarray:
  """100 max(F1, 0) per sentence (BERTScore F1 of outputs vs sources or references)."""
  return 100 * np.maximum(scorer.score(outputs, others)[2], 0)


def evaluate_outputs(sources: list[str], outputs: list[str], target_label: int, *, content_scorer,
                     classifier, references: list[str] | None = None, ppl_lm=None,
                     fluency_classifier=None, fluency_label: int = 0) -> dict:
  """All metrics of outputs aligned with their sources (see the module docstring)."""
  if len(outputs) != len(sources):
    raise ValueError(f"{len(outputs)} outputs for {len(sources)} inputs.")
  r1 = lambda x: round(float(x), 1)
  content = content_scores(content_scorer, outputs, sources)
  style_ok = (classifier.probs(outputs).argmax(1) == target_label).astype(np.float64)
  out = {"content": r1(content.mean()), "style": r1(100 * style_ok.mean()),
         "joint_cs": r1(joint_score(content, style_ok))}
  out["gm_cs"] = r1(geometric_mean(out["content"], out["style"]))
  if fluency_classifier is not None:
    flu_ok = (fluency_classifier.probs(outputs).argmax(1) == fluency_label).astype(np.float64)
    out["fluency"] = r1(100 * flu_ok.mean())
    out["joint"] = r1(joint_score(content, style_ok, flu_ok))
    out["gm"] = r1(geometric_mean(out["content"], out["style"], out["fluency"]))
  else:
    out.update(fluency=None, joint=None, gm=None)
  if references is not None:
    out["bleu"] = r1(mean_sentence_bleu(outputs, references))
    out["bertscore"] = r1(content_scores(content_scorer, outputs, references).mean())
  if ppl_lm is not None:
    out["ppl"] = r1(corpus_perplexity(*ppl_lm, outputs))
  out["num_outputs"] = len(outputs)
  return out
