"""Record where people train: thin layers over ``bnviz.record`` for the common training frameworks.

Each submodule imports its framework and fails with a clear ImportError when it is missing:

    bnviz.integrations.lightning     BnvizCallback for lightning.Trainer(callbacks=[...])
    bnviz.integrations.transformers  BnvizCallback for transformers.Trainer(callbacks=[...])
    bnviz.integrations.keras         BnvizCallback for model.fit(callbacks=[...]) under KERAS_BACKEND=torch
    bnviz.integrations.fastai        BnvizCallback for Learner(cbs=[...])

Every callback numbers a training row with the framework's count of optimizer steps done before
it (so one row per optimizer step under gradient accumulation, and an eval pass after k steps
sits at k, where the framework logs it); docs/integrations/ has one page each, and a recipe for
Accelerate and plain loops.
"""
