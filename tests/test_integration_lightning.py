"""bnviz.integrations.lightning with the real Lightning Trainer (CPU, a tiny model, a few steps)."""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

pl = pytest.importorskip("lightning.pytorch")

from bnviz.integrations.lightning import BnvizCallback  # noqa: E402
from bnviz.store import RecordingWarning, open_run  # noqa: E402
from bnviz.store.ranks import rank_of  # noqa: E402

BATCHES, ACCUMULATE, EPOCHS = 6, 2, 2


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )

    def forward(self, x):
        return self.body(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def loader(seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.utils.data.TensorDataset(
        torch.randn(BATCHES * 4, 3, 5, 5, generator=g), torch.randint(0, 3, (BATCHES * 4,), generator=g)
    )
    return torch.utils.data.DataLoader(data, batch_size=4)


class Counter(pl.Callback):
    """The framework's own counters, seen by an independent callback."""

    def __init__(self):
        self.train_steps, self.val_steps, self.sanity = [], [], 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step not in self.train_steps:
            self.train_steps.append(trainer.global_step)

    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking:
            self.sanity += 1
        else:
            self.val_steps.append(trainer.global_step)


def fit(callbacks):
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accumulate_grad_batches=ACCUMULATE,
        limit_val_batches=2,
        num_sanity_val_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        deterministic=True,
        callbacks=callbacks,
    )
    model = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (num_workers...) and its deprecations
        warnings.simplefilter("error", RecordingWarning)  # but not bnviz's
        trainer.fit(model, loader(1), loader(2))
    return trainer, model


def test_rows_follow_lightnings_global_step_and_training_is_unchanged(tmp_path):
    counter = Counter()
    trainer, model = fit([BnvizCallback(tmp_path / "run.h5"), counter])
    _, twin = fit([])
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name

    steps = EPOCHS * BATCHES // ACCUMULATE
    assert trainer.global_step == steps and counter.train_steps == list(range(steps))
    assert counter.sanity == 1 and len(counter.val_steps) == EPOCHS
    with open_run(tmp_path / "run.h5") as run:
        # one train row per optimizer step, numbered as Lightning numbers the step in training_step
        assert list(run.steps[run.rows("train")]) == counter.train_steps
        # validation at the global step Lightning logs it at; the sanity check is not recorded
        assert sorted(set(run.steps[run.rows("eval")])) == counter.val_steps
        loss_steps, loss = run.scalar("loss")
        assert list(loss_steps) == counter.train_steps and np.isfinite(loss).all()
        assert [li.activation for li in run.layers] == ["relu"]
    assert type(model.body[1]) is nn.BatchNorm2d


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="ranks='some'"):
        BnvizCallback("run.h5", ranks="some")
    with pytest.raises(TypeError, match="leave out optimizer"):
        BnvizCallback("run.h5", optimizer=object())


def test_a_fit_resumed_from_a_checkpoint_goes_on_at_its_global_step(tmp_path):
    path = tmp_path / "run.h5"

    def trainer(max_steps, callbacks):
        return pl.Trainer(
            max_steps=max_steps,
            limit_val_batches=0,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            callbacks=callbacks,
            default_root_dir=tmp_path,
        )

    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", RecordingWarning)
        trainer(4, [BnvizCallback(path, resume=True), saver]).fit(Net(), loader(1))  # "preempted" after 4
        ckpt = next((tmp_path / "ckpt").glob("*step=2.ckpt"))
        resumed = trainer(6, [BnvizCallback(path, resume=True)])
        resumed.fit(Net(), loader(1), ckpt_path=ckpt)
    assert resumed.global_step == 6
    with open_run(path) as run:
        assert len(run.segments) == 2 and run.segments[1].meta["segment_start"] == 2
        # steps 2 and 3 of the first attempt were trained again from the checkpoint: shown once
        assert list(run.steps[run.rows("train")]) == [0, 1, 2, 3, 4, 5]
        assert list(run.segments[0].steps) == [0, 1, 2, 3]


# A real 2-process DDP job on CPU (gloo), launched by Lightning itself (strategy="ddp" starts the
# second process by running the script again). Rank 1 scales its batches by 3: its BN layer sees
# batch statistics of its own.
DDP_JOB = textwrap.dedent("""
    import sys, warnings
    import torch
    import torch.nn.functional as F
    from torch import nn
    import lightning.pytorch as pl
    from bnviz.integrations.lightning import BnvizCallback

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.body(batch[0] * (1 + 2 * self.global_rank)), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 5, 5, generator=g), torch.randint(0, 3, (32,), generator=g)
    data = torch.utils.data.TensorDataset(x, y)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[BnvizCallback(sys.argv[1], ranks=sys.argv[2])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Net(), torch.utils.data.DataLoader(data, batch_size=4))
""")


def ddp_fit(folder, ranks):
    """The .h5 files a 2-process job with ``BnvizCallback(folder / "run.h5", ranks=ranks)`` leaves."""
    script = folder / "job.py"
    script.write_text(DDP_JOB)
    done = subprocess.run(
        [sys.executable, str(script), str(folder / "run.h5"), ranks],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return sorted(p.name for p in folder.glob("*.h5"))


def test_a_ddp_job_with_ranks_all_records_each_rank_its_own_batches(tmp_path):
    assert ddp_fit(tmp_path, "all") == ["run.h5", "run.rank1.h5"]
    with open_run(tmp_path / "run.h5") as run:
        assert run.rank_problems == {} and [rank_of(r) for r in run.ranks] == [0, 1]
        # 32 samples over 2 ranks in batches of 4: four optimizer steps on each
        assert all(list(r.steps[r.rows("train")]) == [0, 1, 2, 3] for r in run.ranks)
        assert all(r.meta["world_size"] == 2 and r.meta["recorded_ranks"] == "all" for r in run.ranks)
        first = [float(r.summary(0, "pre_var")[0]) for r in run.ranks]
        assert first[1] > 4 * first[0]  # rank 1's inputs are 3x as spread: its own batch statistics


def test_a_ddp_job_with_ranks_zero_is_rank_0_alone_with_no_rank_missing(tmp_path):
    assert ddp_fit(tmp_path, "zero") == ["run.h5"]
    with open_run(tmp_path / "run.h5") as run:
        assert (run.meta["rank"], run.meta["world_size"], run.meta["recorded_ranks"]) == (0, 2, "zero")
        assert run.ranks == [run] and run.rank_problems == {}  # the viewer shows no missing rank
        assert list(run.steps[run.rows("train")]) == [0, 1, 2, 3]
