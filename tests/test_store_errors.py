"""Bad input on both sides: each gives a specific error that names the file and the problem."""

import os
import shutil
import subprocess
import sys
import textwrap
import threading

import h5py
import numpy as np
import pytest

from bnviz.store import (
    AsyncWriter,
    CorruptRunFile,
    EmptyRunFile,
    NewerFormatError,
    NotBnvizRun,
    NotHDF5File,
    RecordingWarning,
    RunFileError,
    RunFileMissing,
    RunWriter,
    open_run,
    schema,
)
from bnviz.store.synthetic import synthetic_blocks, write_synthetic_run


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "good.h5"
    write_synthetic_run(path, layers=3, channels=4, steps=200)
    return path


def small_writer(path, **kw):
    table, meta, blocks = synthetic_blocks(layers=2, channels=3, steps=10_000, flush_rows=16)
    return RunWriter(path, layers=table, meta=meta, probes=4, **kw), blocks


# -- writer: the target ------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        small_writer(tmp_path / "nope" / "run.h5")


def test_read_only_directory(tmp_path):
    if os.geteuid() == 0:  # root ignores permission bits; sysfs refuses new files even to root
        target = "/sys"
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o555)
    with pytest.raises(PermissionError, match="not writable") as info:
        small_writer(os.path.join(target, "run.h5"))
    assert str(target) in str(info.value)


def test_existing_file_is_never_clobbered(tmp_path, good_run):
    path = tmp_path / "run.h5"
    shutil.copy(good_run, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        small_writer(path)
    assert path.read_bytes() == before
    writer, blocks = small_writer(path, overwrite=True)
    writer.append(next(blocks))
    writer.close()
    with open_run(path) as run:
        assert len(run.layers) == 2 and len(run.steps) == 16


def test_bad_layer_table_and_meta(tmp_path):
    with pytest.raises(ValueError, match="at least one layer"):
        RunWriter(tmp_path / "a.h5", layers=[], meta={}, probes=0)
    with pytest.raises(ValueError, match="num_features"):
        RunWriter(tmp_path / "a.h5", layers=[{"path": "x", "num_features": 0}], meta={}, probes=0)
    with pytest.raises(ValueError, match="unique"):
        RunWriter(tmp_path / "a.h5", layers=[{"path": "x", "num_features": 1}] * 2, meta={}, probes=0)
    with pytest.raises(ValueError, match="user_meta"):
        RunWriter(
            tmp_path / "a.h5", layers=[{"path": "x", "num_features": 1}], meta={"model_class": object()}, probes=0
        )
    assert not (tmp_path / "a.h5").exists()


# -- writer: failures while recording ----------------------------------------------------


class FailingPending:
    def wait(self):
        raise OSError(28, "No space left on device")


class GatedPending:
    def __init__(self, block, gate):
        self.block, self.gate = block, gate

    def wait(self):
        self.gate.wait(10)
        return self.block


def test_async_write_error_is_one_warning_and_keeps_the_file(tmp_path):
    writer, blocks = small_writer(tmp_path / "run.h5")
    aw = AsyncWriter(writer, max_pending=2)
    assert aw.submit(next(blocks), timeout=5)
    assert aw.submit(FailingPending(), timeout=5)
    with pytest.warns(RecordingWarning, match="No space left") as caught:
        while aw.submit(next(blocks), timeout=5):
            pass
        assert aw.close(timeout=10)
        assert not aw.submit(next(blocks))
    assert len(caught) == 1
    with open_run(tmp_path / "run.h5") as run:
        assert len(run.steps) == 16 and run.recording_failed and run.writer_state == "closed"


def test_full_queue_refuses_instead_of_blocking(tmp_path):
    writer, blocks = small_writer(tmp_path / "run.h5")
    gate = threading.Event()
    aw = AsyncWriter(writer, max_pending=1)
    assert aw.submit(GatedPending(next(blocks), gate), timeout=5)
    while aw.pending:  # the thread has taken the first item and waits on the gate
        threading.Event().wait(0.01)
    assert aw.submit(GatedPending(next(blocks), gate))
    assert not aw.submit(next(blocks))
    gate.set()
    assert aw.close(timeout=10) and aw.error is None
    with open_run(tmp_path / "run.h5") as run:
        assert len(run.steps) == 32


DISK_FULL_CHILD = textwrap.dedent("""
    import resource, signal, sys, warnings
    from bnviz.store import AsyncWriter, RunWriter
    from bnviz.store.synthetic import synthetic_blocks
    table, meta, blocks = synthetic_blocks(layers=4, channels=16, steps=100_000, flush_rows=32)
    writer = AsyncWriter(RunWriter(sys.argv[1], layers=table, meta=meta, probes=4), max_pending=2)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for block in blocks:
            if not writer.submit(block, timeout=10):
                break
        writer.close(timeout=30)
    print(len(caught), caught[0].category.__name__ if caught else "", writer.writer.rows["summary"])
""")


def test_disk_full_mid_run_stops_recording_and_keeps_the_file(tmp_path):
    path = tmp_path / "run.h5"
    out = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    n_warnings, category, committed = out.stdout.split()
    assert (n_warnings, category) == ("1", "RecordingWarning")
    with open_run(path) as run:
        # its last status write could not reach the disk through HDF5; bnviz marked it in place
        assert run.writer_state == "closed" and run.recording_failed
        assert len(run.steps) == int(committed) > 0
        np.testing.assert_array_equal(run.steps, np.arange(int(committed)))
        assert np.all(run.summary_all("n") > 0)


def test_low_disk_space_stops_recording_cleanly(tmp_path, monkeypatch):
    import bnviz.store.writer as writer_module

    writer, blocks = small_writer(tmp_path / "run.h5")
    aw = AsyncWriter(writer)
    assert aw.submit(next(blocks), timeout=5)
    while aw.pending:
        threading.Event().wait(0.01)
    monkeypatch.setattr(writer_module, "MIN_FREE_BYTES", 1 << 62)
    with pytest.warns(RecordingWarning, match="MiB are free on its disk"):
        aw.submit(next(blocks), timeout=5)
        assert aw.close(timeout=10)
    with open_run(tmp_path / "run.h5") as run:
        assert len(run.steps) == 16 and run.recording_failed


# -- reader --------------------------------------------------------------------------------


def expect(exc_type, path, match):
    with pytest.raises(exc_type, match=match) as info:
        open_run(path)
    assert isinstance(info.value, RunFileError) and str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    err = expect(RunFileMissing, tmp_path / "none.h5", "no such file")
    assert isinstance(err, FileNotFoundError)


def test_empty_file(tmp_path):
    (tmp_path / "e.h5").touch()
    expect(EmptyRunFile, tmp_path / "e.h5", "empty")


def test_not_hdf5(tmp_path):
    (tmp_path / "t.h5").write_text("step,loss\n1,0.5\n")
    expect(NotHDF5File, tmp_path / "t.h5", "not an HDF5 file")


def test_hdf5_but_not_bnviz(tmp_path):
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["x"] = np.arange(3)
    expect(NotBnvizRun, tmp_path / "o.h5", "not a bnviz recording")


def test_newer_major_version_is_refused_newer_minor_opens(tmp_path, good_run):
    path = tmp_path / "v.h5"
    shutil.copy(good_run, path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "2.0"
    current = ".".join(map(str, schema.FORMAT_VERSION))
    err = expect(NewerFormatError, path, f"format 2.0.*{current}.*upgrade bnviz")
    assert (err.file_version, err.reader_version) == ("2.0", current)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "1.7"
    with open_run(path) as run:
        assert run.format_version == "1.7" and len(run.steps) == 200


@pytest.mark.parametrize("keep", [0.01, 0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, good_run, keep):
    path = tmp_path / "cut.h5"
    path.write_bytes(good_run.read_bytes()[: int(good_run.stat().st_size * keep)])
    expect(CorruptRunFile, path, "truncated|damaged")


def test_damaged_header(tmp_path, good_run):
    path = tmp_path / "bad.h5"
    data = bytearray(good_run.read_bytes())
    data[8:200] = bytes(192)  # keep the signature, zero the rest of the superblock
    path.write_bytes(bytes(data))
    err = expect(CorruptRunFile, path, "damaged")
    assert err.__cause__ is not None
