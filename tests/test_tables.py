"""CSV without Qt (bnviz.app.tables) gives exactly the table the live view exports."""

import numpy as np
import pytest

from bnviz.app.state import VIEWS, ViewState
from bnviz.app.tables import export_table
from bnviz.store import open_run
from bnviz.store.synthetic import write_synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    a, b = folder / "a.h5", folder / "b.h5"
    write_synthetic_run(
        a,
        layers=3,
        channels=6,
        steps=80,
        eval_every=20,
        channel_every=2,
        hist_every=5,
        layer_names=["stem.bn", "block.bn1", "block.bn2"],
        pathologies=("drift",),
    )
    write_synthetic_run(b, layers=2, channels=6, steps=50, seed=3, layer_names=["stem.bn", "block.bn1"])
    return a, b


def view_table(qapp, state, a, b):
    """What the window's view exports, drawn off screen as render_view draws it."""
    from bnviz.app.session import Session
    from bnviz.app.views import VIEW_CLASSES

    session = Session(ViewState.from_dict(state.to_dict()))
    session.open(str(a), str(b) if b else None)
    try:
        view = VIEW_CLASSES[session.state.view](session)
        view.resize(900, 600)
        view.show()
        view.rebuild()
        qapp.processEvents()
        table = view.export_table()
        view.close()
        view.deleteLater()
        return table
    finally:
        session.close()


CASES = [
    dict(),
    dict(layer="block.bn2", channel=3),
    dict(step_range=(10, 40), step=40, layer="block.bn1"),
    dict(step=33, phase="all", channel_metric="sat_y", overview_metric="saturation", tensors=("pre",)),
]


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("compare", [False, True], ids=["single", "compare"])
def test_csv_table_equals_the_live_views_table(qapp, runs, view, case, compare):
    a, b = runs
    state = ViewState(view=view, **CASES[case])
    expected = view_table(qapp, state, a, b if compare else None)
    with open_run(a) as main, open_run(b) as other:
        got = export_table(state, main, other if compare else None)
    assert list(got) == list(expected)
    for k in expected:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(expected[k]), err_msg=k)
    assert expected, "the view drew something"
