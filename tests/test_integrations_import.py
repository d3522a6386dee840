"""Each bnviz.integrations module imports only with its framework, and says so clearly otherwise."""

import os
import subprocess
import sys

import pytest

# a real framework: seconds to import and train; CI runs them (pytest -m 'not slow' skips)
pytestmark = pytest.mark.slow

CASES = [
    ("lightning", ["lightning", "lightning.pytorch"], "needs Lightning: pip install lightning"),
    ("transformers", ["transformers"], "needs transformers: pip install transformers"),
    ("fastai", ["fastai", "fastai.callback", "fastai.callback.core"], "needs fastai: pip install fastai"),
    ("keras", ["keras"], "needs Keras 3: pip install keras"),
]


@pytest.mark.parametrize("name, hidden, message", CASES, ids=[c[0] for c in CASES])
def test_a_missing_framework_is_a_clear_import_error(name, hidden, message):
    code = (
        f"import sys\nfor m in {hidden!r}: sys.modules[m] = None\n"
        f"try:\n    import bnviz.integrations.{name}\nexcept ImportError as e:\n    print(e)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert message in out.stdout, out.stderr[-2000:]


def test_keras_on_another_backend_is_refused_before_keras_loads():
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    code = "try:\n    import bnviz.integrations.keras\nexcept ImportError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "set KERAS_BACKEND=torch" in out.stdout, out.stderr[-2000:]
