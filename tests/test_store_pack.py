import h5py
import numpy as np
import pytest

from bnviz.store import CorruptRunFile, open_run
from bnviz.store.pack import pack_run
from bnviz.store.synthetic import write_synthetic_run


def test_packed_run_holds_the_same_data_in_less_space(tmp_path):
    src, dst = tmp_path / "run.h5", tmp_path / "packed.h5"
    write_synthetic_run(src, layers=3, channels=8, steps=150, eval_every=25)
    pack_run(src, dst)
    assert dst.stat().st_size < src.stat().st_size
    with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
        names = []
        a.visit(names.append)
        for name in names:
            if isinstance(a[name], h5py.Dataset):
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
            assert dict(a[name].attrs).keys() == dict(b[name].attrs).keys()
    with open_run(src) as x, open_run(dst) as y:
        assert y.writer_state == "closed"
        np.testing.assert_array_equal(x.steps, y.steps)
        np.testing.assert_array_equal(x.channels(0, "gamma"), y.channels(0, "gamma"))


def test_pack_refuses_a_file_that_is_not_a_run(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(Exception, match="notes.h5"):
        pack_run(bad, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_a_truncated_copy_of_a_packed_run_is_reported_as_truncated(tmp_path):
    src, packed = tmp_path / "run.h5", tmp_path / "packed.h5"
    write_synthetic_run(src, layers=3, channels=8, steps=150)
    pack_run(src, packed)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 3])
    with pytest.raises(CorruptRunFile, match="truncated"):
        open_run(cut)
