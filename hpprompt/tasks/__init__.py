"""Prompt tasks: what a prompt is scored on.

The task interface (`base.PromptTask`); few-shot classification (data: the bundled sets, tfds and
your own files in `user_data`; templates, verbalizers, scorers in `scoring`, the embedding-level
path of the gradient methods in `embedding_task`, `packing`, `vocabulary`); style transfer
(generation, reward, style classifier, data); textual inversion (CLIP reward, images, `clip_task`);
`custom` rewards. Floor 3: imports metrics, models, ops and training; never a method or a launcher.
"""
