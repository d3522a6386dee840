"""bnviz for the Hugging Face Trainer: ``transformers.Trainer(..., callbacks=[BnvizCallback("run.h5")])``.

Records the model from ``on_train_begin`` to ``on_train_end``. A training row's step is
``state.global_step`` before that optimizer step's increment (optimizer steps done before it: one
row per optimizer step under ``gradient_accumulation_steps``; a step the GradScaler skipped counts,
as the Trainer counts it). Evaluation during training is recorded as eval rows at the
``global_step`` the Trainer logs its metrics at. docs/integrations/transformers.md.
"""

from __future__ import annotations

try:
    from transformers import TrainerCallback
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("bnviz.integrations.transformers needs transformers: pip install transformers") from err

import bnviz
from bnviz.store.ranks import records_on_rank

from ._common import check_options, record_kwargs


class BnvizCallback(TrainerCallback):
    """Record BN statistics of the Trainer's model to ``path``.

    ranks: "zero" (only process 0 records) or "all" (every process its own file, docs/distributed.md).
    record_kwargs: passed to ``bnviz.record``; with ``resume=True`` a run resumed from a checkpoint
        (``trainer.train(resume_from_checkpoint=...)``) goes on from the checkpoint's global step.
    """

    def __init__(self, path, *, ranks: str = "zero", **record_kwargs):
        check_options("transformers", ranks, record_kwargs)
        self.path, self.ranks, self.record_kwargs = path, ranks, record_kwargs
        self.recorder = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.recorder is None and records_on_rank(self.ranks, args.process_index):
            self.recorder = bnviz.record(
                model, self.path, **record_kwargs(self.record_kwargs, state.global_step, self.ranks)
            )

    def on_optimizer_step(self, args, state, control, **kwargs):
        # after optimizer.step(), before zero_grad (gradients are still there) and the increment
        if self.recorder is not None:
            self.recorder.step(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # the Trainer's own numbers (loss, learning_rate, grad_norm, eval_*), beside the BN statistics
        if self.recorder is not None and logs:
            self.recorder.log(
                **{k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
