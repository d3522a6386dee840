"""A full disk never hurts the training: at the file's creation, mid-run or at close, recording
stops with one readable warning, training goes on bit-identically, and no damaged file is left.

Real disk-full errors come from a tiny tmpfs (needs root to mount; skipped with the reason
otherwise); a file size limit (RLIMIT_FSIZE) injects the same kind of failure anywhere.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bnviz.store import open_run

CHILD = textwrap.dedent("""
    import json, resource, signal, sys, warnings
    import torch
    from torch import nn
    import bnviz
    import bnviz.store.writer as writer
    from bnviz.store import RecordingWarning

    target, when, filler, min_free = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    if min_free == "0":
        writer.MIN_FREE_BYTES = 0  # reach the real error instead of stopping at 256 MiB free

    def fill_disk():
        if when == "limit":  # any write that grows a file past 4 KiB fails with EFBIG
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            return
        with open(filler, "ab", buffering=0) as f:
            for size in (1 << 16, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"x" * size)
                except OSError:
                    pass

    def fresh():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
        return model, torch.optim.SGD(model.parameters(), lr=0.05)

    def train(model, opt, rec=None, fill_at=None):
        g = torch.Generator().manual_seed(1)
        for step in range(200):
            if step == fill_at:
                fill_disk()
            loss = model(torch.randn(32, 8, generator=g)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            if rec is not None:
                rec.log(loss=loss); rec.step()
        return model

    plain = train(*fresh())
    model, opt = fresh()
    # rows reach the file at steps 63, 127, 191 and at close (flush_every=64)
    fill_at = {"create": 0, "limit": 0, "mid": 100, "close": 199}[when]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bnviz.record(model, target, flush_every=64, flush_seconds=3600) as rec:
            train(model, opt, rec, fill_at)
    same = all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.state_dict().values()))
    print(json.dumps({"identical": same, "instrumented": type(model[1]) is not nn.BatchNorm1d,
                      "warnings": [str(w.message) for w in caught if issubclass(w.category, RecordingWarning)]}))
""")


def run_child(target, when, filler, min_free="0"):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), when, str(filler), min_free],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr  # never a crash (a SIGSEGV is -11)
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["identical"] and not report["instrumented"]
    assert len(report["warnings"]) == 1, report["warnings"]
    message = report["warnings"][0]
    assert "Training goes on" in message and str(target) in message
    for internal in ("HDF5", "H5", "errno", "Slist", "Can't", "unable to"):
        assert internal not in message, message
    return message


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs: writes really fail with ENOSPC once it is full."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        pytest.skip("no mount command here; the RLIMIT_FSIZE test covers the same paths")
    if out.returncode:
        pytest.skip(
            f"cannot mount a tmpfs ({out.stderr.strip() or 'needs root'}); the RLIMIT_FSIZE test covers the same paths"
        )
    yield mount
    subprocess.run(["umount", "-l", str(mount)], timeout=30)


def leftovers(folder, *expected):
    return sorted(p.name for p in folder.iterdir() if p.name not in expected)


def test_disk_full_at_creation_leaves_no_file(tiny_disk):
    target = tiny_disk / "run.h5"
    message = run_child(target, "create", tiny_disk / "filler")
    assert "the disk is full" in message and "no file was written" in message
    assert "free space on that disk" in message
    assert leftovers(tiny_disk, "filler") == []  # no run, no half-made run, no lock file


def test_disk_full_at_creation_keeps_the_file_it_would_overwrite(tiny_disk):
    target = tiny_disk / "run.h5"
    target.write_bytes(b"an earlier run")
    child = CHILD.replace(
        "bnviz.record(model, target, flush_every=64, flush_seconds=3600)",
        "bnviz.record(model, target, flush_every=64, flush_seconds=3600, overwrite=True)",
    )
    out = subprocess.run(
        [sys.executable, "-c", child, str(target), "create", str(tiny_disk / "filler"), "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == b"an earlier run"
    assert leftovers(tiny_disk, "filler", "run.h5") == []


def test_low_free_space_at_creation_stops_before_writing(tiny_disk):
    message = run_child(tiny_disk / "run.h5", "mid", tiny_disk / "filler", min_free="default")
    assert "MiB are free" in message and "no file was written" in message
    assert leftovers(tiny_disk, "filler") == []


@pytest.mark.parametrize("when,committed", [("mid", 64), ("close", 192)])
def test_disk_full_later_keeps_every_committed_row(tiny_disk, when, committed):
    target = tiny_disk / "run.h5"
    message = run_child(target, when, tiny_disk / "filler")
    assert "the disk is full" in message
    assert f"keeps the {committed} rows recorded before (up to step {committed - 1})" in message
    (tiny_disk / "filler").unlink()
    with open_run(target) as run:
        np.testing.assert_array_equal(run.steps, np.arange(committed))
        assert run.recording_failed and run.writer_state == "closed"
        assert np.all(run.summary_all("n") > 0)
    assert leftovers(tiny_disk, "run.h5") == []


def test_a_file_size_limit_at_creation_is_the_same_clean_stop(tmp_path):
    target = tmp_path / "run.h5"
    message = run_child(target, "limit", tmp_path / "unused")
    assert "size limit" in message and "no file was written" in message
    assert leftovers(tmp_path) == []
