"""bnviz.integrations.keras with real Keras 3 on the torch backend (a tiny functional model)."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

if importlib.util.find_spec("keras") is None:  # importing it here would pick the default backend
    pytest.skip("keras is not installed", allow_module_level=True)

SCRIPT = textwrap.dedent("""
    import json, os, sys, warnings
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np, keras, torch
    from bnviz.integrations.keras import BnvizCallback
    from bnviz.store import RecordingWarning

    def build():
        keras.utils.set_random_seed(0)
        inp = keras.Input((6, 6, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
        x = keras.layers.BatchNormalization(name="bn1")(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.Conv2D(5, 3, padding="same")(x)
        x = keras.layers.BatchNormalization(name="bn2", momentum=0.9)(x)
        x = keras.layers.Activation("sigmoid")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inp, keras.layers.Dense(3)(x))
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6, 6, 3)).astype("float32"), rng.integers(0, 3, 40)
    xv, yv = rng.normal(size=(8, 6, 6, 3)).astype("float32"), rng.integers(0, 3, 8)

    class Counter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train, self.val, self.first_input, self.moving = [], [], None, None
        def on_train_batch_begin(self, batch, logs=None):
            self.train.append(int(self.model.optimizer.iterations))
            if self.first_input is None:  # independent capture of bn1's first input and state
                sub = keras.Model(self.model.inputs, self.model.get_layer("bn1").input)
                self.first_input = sub(x[:8], training=False).detach().numpy()
                bn = self.model.get_layer("bn1")
                self.moving = [np.array(bn.moving_mean.numpy()), np.array(bn.moving_variance.numpy()),
                               np.array(bn.gamma.numpy())]
        def on_test_begin(self, logs=None):
            self.val.append(int(self.model.optimizer.iterations))

    def fit(callbacks):
        model = build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", RecordingWarning)
            model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                      callbacks=callbacks)
        return model

    counter = Counter()
    model = fit([BnvizCallback(sys.argv[1]), counter])
    twin = fit([])
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))
    bn = model.get_layer("bn1")
    json.dump({"same": same, "train": counter.train, "val": counter.val,
               "first_input": counter.first_input.tolist(), "moving": [m.tolist() for m in counter.moving],
               "patched": "call" in bn.__dict__}, open(sys.argv[2], "w"))
""")


def test_keras_batch_normalization_is_recorded_faithfully_at_keras_steps(tmp_path):
    import json

    import numpy as np

    from bnviz.store import open_run

    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run.h5"), str(tmp_path / "out.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["same"], "training with the callback differs from the unrecorded twin"
    assert not out["patched"], "the BN layers' call was not restored"
    assert out["train"] == list(range(10)) and out["val"] == [5, 10]
    with open_run(tmp_path / "run.h5") as run:
        assert [li.path for li in run.layers] == ["bn1", "bn2"]
        assert [li.activation for li in run.layers] == ["relu", "sigmoid"]
        assert run.layer("bn2").momentum == pytest.approx(0.1) and run.layer("bn1").eps == pytest.approx(1e-3)
        assert list(run.steps[run.rows("train")]) == out["train"]
        assert sorted(set(run.steps[run.rows("eval")])) == out["val"]
        # step 0's row: the batch statistics of bn1's input (channels last in Keras), its variables before the step
        first = np.asarray(out["first_input"], np.float32)
        mean, var = first.mean(axis=(0, 1, 2)), first.var(axis=(0, 1, 2))
        np.testing.assert_allclose(run.channels("bn1", "pre_mean", 0), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.channels("bn1", "pre_var", 0), var, rtol=1e-4)
        moving_mean, moving_var, gamma = (np.asarray(m, np.float32) for m in out["moving"])
        np.testing.assert_array_equal(run.channels("bn1", "running_mean", 0), moving_mean)
        np.testing.assert_array_equal(run.channels("bn1", "running_var", 0), moving_var)
        np.testing.assert_array_equal(run.channels("bn1", "gamma", 0), gamma)
        assert np.isfinite(run.channels("bn1", "grad_gamma", 0)).all()
        # an eval row normalises with the moving statistics
        ev = run.channel_rows("eval")[0]
        np.testing.assert_array_equal(run.channels("bn1", "used_mean", ev), run.channels("bn1", "running_mean", ev))
        assert list(run.scalar("loss")[0]) == out["train"]
