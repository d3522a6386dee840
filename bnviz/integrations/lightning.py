"""bnviz for Lightning: ``lightning.Trainer(callbacks=[BnvizCallback("run.h5")])``.

Records the LightningModule from the start of training (after the sanity-check validation, which
is not recorded) to the end of ``fit``. A training row's step is ``trainer.global_step`` during that
step (optimizer steps done before it: one row per optimizer step under ``accumulate_grad_batches``,
and a step a GradScaler skipped counts, as Lightning counts it); validation during ``fit`` is
recorded as eval rows at the ``global_step`` Lightning logs them at. docs/integrations/lightning.md.
"""

from __future__ import annotations

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("bnviz.integrations.lightning needs Lightning: pip install lightning") from err

import bnviz
from bnviz.store.ranks import records_on_rank

from ._common import check_options, loss_of, record_kwargs


class BnvizCallback(pl.Callback):
    """Record BN statistics of the trained LightningModule to ``path``.

    ranks: "zero" (only global rank 0 records) or "all" (every rank its own file, docs/distributed.md).
    log_loss: also record the loss ``training_step`` returned (of the step's last micro-batch).
    record_kwargs: passed to ``bnviz.record`` (every, probes, activations, resume, ...); with
        ``resume=True`` a run resumed from a checkpoint goes on from the checkpoint's global step.
    """

    def __init__(self, path, *, ranks: str = "zero", log_loss: bool = True, **record_kwargs):
        check_options("Lightning", ranks, record_kwargs)
        self.path, self.ranks, self.log_loss, self.record_kwargs = path, ranks, log_loss, record_kwargs
        self.recorder = None
        self._done = 0

    def on_train_start(self, trainer, pl_module):
        if self.recorder is None and records_on_rank(self.ranks, trainer.global_rank):
            self._done = trainer.global_step
            self.recorder = bnviz.record(
                pl_module, self.path, **record_kwargs(self.record_kwargs, self._done, self.ranks)
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        done = trainer.global_step
        if self.recorder is None or done == self._done:
            return  # not recording here, or a micro-batch of gradient accumulation
        loss = loss_of(outputs) if self.log_loss else None
        if loss is not None:
            self.recorder.log(loss=loss)
        self.recorder.step(done - 1)
        self._done = done

    def on_fit_end(self, trainer, pl_module):
        self._close()

    def on_exception(self, trainer, pl_module, exception):
        self._close()

    def teardown(self, trainer, pl_module, stage):
        self._close()

    def _close(self):
        if self.recorder is not None:
            self.recorder.close()
