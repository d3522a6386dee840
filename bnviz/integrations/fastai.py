"""bnviz for fastai: ``Learner(dls, model, ..., cbs=[BnvizCallback("run.h5")])``.

Records ``learn.model`` for each ``fit`` (not for ``lr_find``). fastai has no optimizer-step
counter of its own (``train_iter`` counts batches), so a training row's step is the number of
optimizer steps done before it in this fit: ``after_step`` events, which a step cancelled by
``GradientAccumulation`` does not fire (one row per optimizer step) and a step the
``MixedPrecision`` GradScaler skipped does (fastai calls it a step). The validation pass of each
epoch is recorded as eval rows. docs/integrations/fastai.md.
"""

from __future__ import annotations

try:
    from fastai.callback.core import Callback
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("bnviz.integrations.fastai needs fastai: pip install fastai") from err

import bnviz
from bnviz.hooks.distributed import rank_info
from bnviz.store.ranks import records_on_rank

from ._common import check_options, loss_of


class BnvizCallback(Callback):
    """Record BN statistics of ``learn.model`` to ``path``.

    ranks: "zero" or "all" in a distributed job (docs/distributed.md).
    steps_done: optimizer steps trained before this fit (a resumed run, with ``resume=True``).
    record_kwargs: passed to ``bnviz.record``.
    """

    order = 100  # after fastai's own callbacks (MixedPrecision, GradientAccumulation) set up

    def __init__(self, path, *, ranks: str = "zero", steps_done: int = 0, **record_kwargs):
        check_options("fastai", ranks, record_kwargs)
        self.path, self.ranks, self.steps_done, self.record_kwargs = path, ranks, steps_done, record_kwargs
        self.recorder = None

    def before_fit(self):
        info = rank_info()
        finding_lr = any(type(cb).__name__ == "LRFinder" for cb in self.learn.cbs)
        if self.recorder is None and not finding_lr and records_on_rank(self.ranks, info["rank"] if info else 0):
            self._steps = int(self.steps_done)
            self.recorder = bnviz.record(
                self.learn.model, self.path, start_step=self._steps, ranks=self.ranks, **self.record_kwargs
            )

    def after_step(self):
        if self.recorder is not None and self.training:
            loss = loss_of(self.learn.loss)
            if loss is not None:
                self.recorder.log(loss=loss)
            self.recorder.step(self._steps)
            self._steps += 1

    def after_fit(self):
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
