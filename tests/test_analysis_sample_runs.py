"""Findings on the shipped recordings of real training runs (sample_runs/, made by its scripts):
each run that was built to show a problem gets that finding; its healthy twin gets none."""

from pathlib import Path

import pytest

from bnviz.analysis.findings import findings
from bnviz.store import open_run

SAMPLES = Path(__file__).resolve().parent.parent / "sample_runs"
# run -> kinds that must be found (by layer path), or {} for a clean bill of health
EXPECTED = {
    "bn_paper_with_bn": {},
    "bn_paper_without_bn": {"drift": "7"},  # the BN paper's Figure 1: last hidden layer drifts
    "tanh_large_init_plain": {"saturated": "1"},
    "tanh_large_init_bn": {},
    "relu_dying": {"dead": "7", "gamma_beta_zone": "7"},
    "tiny_batch_2": {"small_batch": "1", "train_eval": "1"},
    "tiny_batch_64": {},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shipped_runs_get_the_findings_they_were_built_to_show(name):
    with open_run(SAMPLES / f"{name}.h5") as run:
        fs = findings(run)
    got = {(f.kind, f.layer) for f in fs}
    if not EXPECTED[name]:
        assert fs == []
    for kind, layer in EXPECTED[name].items():
        assert (kind, layer) in got, f"{name}: no {kind} finding in layer {layer}; found {sorted(got)}"
