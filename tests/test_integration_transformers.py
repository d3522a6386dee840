"""bnviz.integrations.transformers with the real Trainer and a tiny ResNet (ResNetConfig, no downloads)."""

import warnings

import numpy as np
import pytest
import torch

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")

from bnviz.integrations.transformers import BnvizCallback  # noqa: E402
from bnviz.store import RecordingWarning, open_run  # noqa: E402

STEPS, ACCUMULATE = 4, 2


class Images(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 16, 16, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class Counter(transformers.TrainerCallback):
    """The Trainer's own counters, seen by an independent callback."""

    def __init__(self):
        self.train_steps, self.eval_steps = [], []

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.train_steps.append(state.global_step)

    def on_evaluate(self, args, state, control, **kwargs):
        self.eval_steps.append(state.global_step)


def train(tmp_path, name, callbacks):
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3
    )
    model = transformers.ResNetForImageClassification(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / name),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=ACCUMULATE,
        eval_strategy="steps",
        eval_steps=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Images(64, 1), eval_dataset=Images(8, 2), callbacks=callbacks
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Trainer's own advice and deprecations
        warnings.simplefilter("error", RecordingWarning)  # but not bnviz's
        trainer.train()
    return trainer, model


def test_rows_follow_the_trainers_global_step_and_training_is_unchanged(tmp_path):
    counter = Counter()
    trainer, model = train(tmp_path, "a", [BnvizCallback(tmp_path / "run.h5"), counter])
    _, twin = train(tmp_path, "b", [])
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name

    assert trainer.state.global_step == STEPS and counter.train_steps == list(range(STEPS))
    assert counter.eval_steps == [2, 4]
    with open_run(tmp_path / "run.h5") as run:
        # one train row per optimizer step (not per micro-batch), numbered by the steps done before it
        assert list(run.steps[run.rows("train")]) == counter.train_steps
        # evaluation at the global step the Trainer logs eval_loss at
        assert sorted(set(run.steps[run.rows("eval")])) == counter.eval_steps
        eval_steps, eval_loss = run.scalar("eval_loss")
        assert list(eval_steps) == counter.eval_steps and np.isfinite(eval_loss).all()
        assert len(run.layers) == sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert {li.activation for li in run.layers} >= {"relu"}
    assert not any(type(m).__module__.startswith("bnviz") for m in model.modules())


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="ranks"):
        BnvizCallback("run.h5", ranks=0)


def test_a_train_resumed_from_a_checkpoint_goes_on_at_its_global_step(tmp_path):
    path = tmp_path / "run.h5"

    def trainer(max_steps):
        torch.manual_seed(0)
        config = transformers.ResNetConfig(
            num_channels=3, embedding_size=8, hidden_sizes=[8], depths=[1], layer_type="basic", num_labels=3
        )
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=max_steps,
            per_device_train_batch_size=4,
            report_to=[],
            use_cpu=True,
            seed=0,
            save_strategy="steps",
            save_steps=2,
            disable_tqdm=True,
        )
        return transformers.Trainer(
            model=transformers.ResNetForImageClassification(config),
            args=args,
            train_dataset=Images(64, 1),
            callbacks=[BnvizCallback(path, resume=True)],
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", RecordingWarning)
        trainer(3).train()  # checkpoints at steps 2 and 3; "preempted" after 3
        resumed = trainer(5)
        resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    assert resumed.state.global_step == 5
    with open_run(path) as run:
        assert len(run.segments) == 2 and run.segments[1].meta["segment_start"] == 2
        assert list(run.steps[run.rows("train")]) == [0, 1, 2, 3, 4]
        assert list(run.segments[0].steps) == [0, 1, 2]
