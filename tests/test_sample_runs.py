"""The sample runs: each script runs (reduced), and the shipped recordings show what they claim."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnviz.store import open_run
from bnviz.store.schema import QUANTILE_NAMES

SAMPLES = Path(__file__).resolve().parents[1] / "sample_runs"
EXPECTED = {
    "bn_paper.py": ["bn_paper_with_bn", "bn_paper_without_bn"],
    "lenet.py": ["lenet_bn_lr0.1", "lenet_bn_lr1.5", "lenet_plain_lr0.1", "lenet_plain_lr1.5"],
    "gamma_beta.py": [
        "gamma_frozen",
        "gamma_learned",
        "bn_before_relu",
        "bn_after_relu",
        "tanh_large_init_plain",
        "tanh_large_init_bn",
        "relu_dying",
    ],
    "tiny_batches.py": ["tiny_batch_2", "tiny_batch_64"],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_sample_script_runs_in_quick_mode_and_its_recordings_open(tmp_path, script):
    subprocess.run([sys.executable, str(SAMPLES / script), "--quick", "--out", str(tmp_path)], check=True, timeout=300)
    for name in EXPECTED[script]:
        with open_run(tmp_path / f"{name}.h5") as run:
            assert run.writer_state == "closed"
            assert len(run.rows("train")) >= 20 and len(run.rows("eval")) >= 1
            assert "test_accuracy" in run.scalar_names
    assert not list(tmp_path.glob("*.recording.h5"))


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_every_recording_is_shipped_and_small(script):
    for name in EXPECTED[script]:
        path = SAMPLES / f"{name}.h5"
        assert path.exists(), f"{path} missing: run python sample_runs/make_all.py"
        assert path.stat().st_size <= 10 * 2**20
    assert sum(p.stat().st_size for p in SAMPLES.glob("*.h5")) <= 40 * 2**20


def band_drift(path) -> float:
    """How far the last hidden layer's sigmoid input moves over training.

    For each of the 15th, 50th and 85th percentiles of the sigmoid input (the BN output y;
    the Probe's input without BN) on train rows: the largest distance from its mean over the
    first 20 recorded steps; averaged over the three percentiles."""
    with open_run(path) as run:
        q = run.quantiles(run.layers[-1].path, "post", run.rows("train"))
    cols = q[:, [QUANTILE_NAMES.index(n) for n in ("q15", "q50", "q85")]]
    return float(np.mean(np.max(np.abs(cols - cols[:20].mean(0)), axis=0)))


def test_bn_paper_claim_holds_on_the_shipped_recordings():
    # The BN paper's Fig. 1: with BN the percentiles stay put, without BN they wander.
    # Margin: with BN the band moves less than half as far as without.
    with_bn = band_drift(SAMPLES / "bn_paper_with_bn.h5")
    without_bn = band_drift(SAMPLES / "bn_paper_without_bn.h5")
    assert with_bn < 0.5 * without_bn, (with_bn, without_bn)
