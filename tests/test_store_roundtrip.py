"""What the writer stores, the reader returns: every tier, metadata and odd layer names."""

import h5py
import numpy as np
import pytest

from bnviz.store import RunWriter, open_run, schema
from bnviz.store.block import Block
from bnviz.store.layout import NB, NQ

ODD_NAMES = ["features/0.bn", "layer1.0.bn1", "with space", "ümlaut.β", "a/b/c d.é"]
WIDTHS = [3, 5, 2, 4, 1]


def layer_table(names=ODD_NAMES, widths=WIDTHS, probes=2):
    return [
        {
            "index": i,
            "path": n,
            "kind": "BatchNorm2d",
            "num_features": c,
            "eps": 1e-5,
            "momentum": None if i == 1 else 0.1,
            "affine": True,
            "track_running_stats": True,
            "activation": "relu",
            "activation_source": "module",
            "zone_rule": "dead",
            "zone_threshold": 0.0,
            "probe_channels": list(range(min(probes, c))),
        }
        for i, (n, c) in enumerate(zip(names, widths))
    ]


def random_block(
    rng, first_step, rows=6, widths=WIDTHS, probes=2, channel_every=2, hist_every=3, names=("loss", "acc")
):
    L = len(widths)
    step = np.arange(first_step, first_step + rows, dtype=np.int64)
    phase = (step % 4 == 3).astype(np.int8)
    ch, hi = step % channel_every == 0, step % hist_every == 0
    scalars = np.full((rows, schema.MAX_SCALARS), np.nan)
    scalars[:, : len(names)] = rng.standard_normal((rows, len(names)))
    return Block(
        summary_step=step,
        summary_phase=phase,
        summary_time=1e9 + step * 0.5,
        summary=rng.standard_normal((rows, L, len(schema.SUMMARY_FIELDS))).astype(np.float32),
        quantiles=rng.standard_normal((rows, L, 3, NQ)).astype(np.float32),
        probes=rng.standard_normal((rows, L, probes, NQ)).astype(np.float32),
        channel_step=step[ch],
        channel_phase=phase[ch],
        channels=[rng.standard_normal((ch.sum(), len(schema.CHANNEL_FIELDS), c)).astype(np.float32) for c in widths],
        hist_step=step[hi],
        hist_phase=phase[hi],
        hist_counts=rng.integers(0, 1000, (hi.sum(), L, 3, NB)).astype(np.int32),
        hist_range=np.sort(rng.standard_normal((hi.sum(), L, 3, 2)), axis=-1).astype(np.float32),
        scalar_step=step,
        scalar_values=scalars,
        scalar_names=list(names),
        dropped_steps=1,
    )


def concat(blocks, attr):
    return np.concatenate([getattr(b, attr) for b in blocks])


@pytest.fixture
def written(tmp_path):
    rng = np.random.default_rng(1)
    blocks = [random_block(rng, 6 * i) for i in range(4)]
    path = tmp_path / "run.h5"
    meta = {
        "model_class": "Net",
        "torch_version": "2.13.0",
        "run_name": "r ü",
        "user_meta": {"lr": 0.1, "tags": ["a", "ü"]},
        "schedule": {"every": 1, "channel_every": 2},
    }
    with RunWriter(path, layers=layer_table(), meta=meta, probes=2) as w:
        for b in blocks:
            w.append(b)
    return path, blocks, meta


def test_every_tier_round_trips(written):
    path, blocks, _ = written
    with open_run(path) as run:
        np.testing.assert_array_equal(run.steps, concat(blocks, "summary_step"))
        np.testing.assert_array_equal(run.phases, concat(blocks, "summary_phase"))
        np.testing.assert_array_equal(run.times, concat(blocks, "summary_time"))
        summary, quantiles, probes = (concat(blocks, a) for a in ("summary", "quantiles", "probes"))
        for i, name in enumerate(ODD_NAMES):
            assert run.layer(name).index == i
            np.testing.assert_array_equal(run.summary_layer(name), summary[:, i])
            np.testing.assert_array_equal(
                run.summary(name, "post_var"), summary[:, i, schema.SUMMARY_FIELDS.index("post_var")]
            )
            np.testing.assert_array_equal(run.quantiles(name, "xhat"), quantiles[:, i, 1])
            np.testing.assert_array_equal(run.probes(name), probes[:, i])
            channels = np.concatenate([b.channels[i] for b in blocks])
            for f, field in enumerate(schema.CHANNEL_FIELDS):
                np.testing.assert_array_equal(run.channels(name, field), channels[:, f])
        np.testing.assert_array_equal(run.summary_all("sat_y"), summary[..., schema.SUMMARY_FIELDS.index("sat_y")])
        np.testing.assert_array_equal(run.channel_steps, concat(blocks, "channel_step"))
        np.testing.assert_array_equal(run.hist_steps, concat(blocks, "hist_step"))
        counts, ranges = concat(blocks, "hist_counts"), concat(blocks, "hist_range")
        h = run.hist("ümlaut.β", "post", 2)
        np.testing.assert_array_equal(h.counts, counts[2, 3, 2, : schema.HIST_BINS])
        assert (h.under, h.over, h.nonfinite) == tuple(counts[2, 3, 2, schema.HIST_BINS :])
        assert h.edges[0] == ranges[2, 3, 2, 0] and h.edges[-1] == ranges[2, 3, 2, 1]
        assert len(h.edges) == schema.HIST_BINS + 1
        assert run.scalar_names == ["loss", "acc"]
        steps, values = run.scalar("acc")
        np.testing.assert_array_equal(values, concat(blocks, "scalar_values")[:, 1])
        np.testing.assert_array_equal(steps, concat(blocks, "scalar_step"))
        assert run.dropped_steps == 4 and run.writer_state == "closed" and not run.recording_failed


def test_metadata_and_layer_table(written):
    path, _, meta = written
    with open_run(path) as run:
        assert run.format_version == schema.FORMAT_VERSION_TEXT
        assert [layer.path for layer in run.layers] == ODD_NAMES
        assert run.layer(1).momentum is None and run.layer("with space").num_features == 2
        for key, value in meta.items():
            assert run.meta[key] == value
        for key in ("bnviz_version", "command_line", "host", "pid", "start_time"):
            assert run.meta[key]
    with h5py.File(path, "r") as f:  # plain h5py sees the documented layout
        assert f.attrs["format"] == "bnviz"
        assert list(f["commit"][()]) == [24, 12, 8, 24]


def test_row_selection(written):
    path, blocks, _ = written
    summary = concat(blocks, "summary")[:, 2, 0]
    with open_run(path) as run:
        eval_rows = run.rows("eval")
        assert set(run.phases[eval_rows]) == {schema.PHASE_EVAL}
        np.testing.assert_array_equal(run.summary(2, "n", eval_rows), summary[eval_rows])
        np.testing.assert_array_equal(run.summary(2, "n", slice(-5, None, 2)), summary[-5::2])
        assert run.summary(2, "n", 3) == summary[3]
        assert run.summary(2, "n", []).shape == (0,)
        assert len(run.rows("train")) + len(eval_rows) == len(run.steps)
        with pytest.raises(IndexError):
            run.summary(2, "n", [0, 24])
        with pytest.raises(KeyError, match="no layer"):
            run.layer("missing")
        with pytest.raises(KeyError, match="summary field"):
            run.summary(0, "nope")


def test_snapshot_is_the_last_row_at_or_before_the_step(written):
    path, blocks, _ = written
    summary = concat(blocks, "summary")
    with open_run(path) as run:
        snap = run.snapshot(10)
        assert snap["a/b/c d.é"]["step"] == 10
        assert snap["a/b/c d.é"]["pre_mean"] == pytest.approx(summary[10, 4, 1])
        assert snap["features/0.bn"]["xhat_q50"] == pytest.approx(concat(blocks, "quantiles")[10, 0, 1, 4])
        assert run.snapshot(10, phase="eval")["with space"]["step"] == 7
        assert run.snapshot(-1) == {}


def test_no_probes_and_empty_tiers(tmp_path):
    rng = np.random.default_rng(2)
    block = random_block(rng, 1, probes=0, channel_every=1000, hist_every=1000, names=())
    block.scalar_step, block.scalar_values = np.zeros(0, np.int64), np.zeros((0, 0))
    with RunWriter(tmp_path / "r.h5", layers=layer_table(probes=0), meta={}, probes=0) as w:
        w.append(block)
    with open_run(tmp_path / "r.h5") as run:
        assert run.probes(0).shape == (6, 0, NQ)
        assert run.channels(0, "gamma").shape == (0, 3)
        assert len(run.hist_steps) == 0 and run.scalar_names == []


def test_malformed_blocks_are_refused(tmp_path):
    rng = np.random.default_rng(3)
    with RunWriter(tmp_path / "r.h5", layers=layer_table(), meta={}, probes=2) as w:
        bad = random_block(rng, 0)
        bad.summary = bad.summary[:, :2]
        with pytest.raises(ValueError, match="block.summary has shape"):
            w.append(bad)
        w.append(random_block(rng, 6))
        with pytest.raises(ValueError, match="must not decrease"):
            w.append(random_block(rng, 0))
        assert w.rows["summary"] == 6


def test_an_append_that_fails_part_way_leaves_no_trace(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    blocks = [random_block(rng, 6 * i) for i in range(3)]
    with RunWriter(tmp_path / "r.h5", layers=layer_table(), meta={}, probes=2) as w:
        w.append(blocks[0])
        original, calls = RunWriter._write, []

        def fail_on_fifth(self, col, data):
            calls.append(col.name)
            if len(calls) == 5:
                raise ValueError("simulated failure after four datasets")
            original(self, col, data)

        monkeypatch.setattr(RunWriter, "_write", fail_on_fifth)
        with pytest.raises(ValueError, match="simulated"):
            w.append(blocks[1])
        monkeypatch.setattr(RunWriter, "_write", original)
        w.append(blocks[2])
    kept = [blocks[0], blocks[2]]
    with open_run(tmp_path / "r.h5") as run:
        np.testing.assert_array_equal(run.steps, concat(kept, "summary_step"))
        np.testing.assert_array_equal(run.summary_all("n"), concat(kept, "summary")[..., 0])
        np.testing.assert_array_equal(run.times, concat(kept, "summary_time"))
