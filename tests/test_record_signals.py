"""What SIGTERM and Ctrl-C do to a recording: SIGTERM commits what is buffered and closes the
file before the process ends (or hands over to the user's own handler); Ctrl-C during close()
waits for the rows, and a second Ctrl-C marks the file failed, never closed without its rows."""

import signal
import subprocess
import sys
import textwrap

import pytest

from bnviz.store import open_run

TRAINING = textwrap.dedent("""
    import os, signal, sys, time, torch
    from torch import nn
    import bnviz
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "user":
        def on_term(signum, frame):
            print("user handler", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_term)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    # nothing reaches the file by itself: every row is still buffered when the signal comes
    rec = bnviz.record(model, path, optimizer=opt, flush_every=10_000, flush_seconds=3600)
    for step in range(%d):
        model(torch.randn(32, 8)).pow(2).mean().backward()
        opt.step(); opt.zero_grad()
    if mode.startswith("ctrl-c"):
        import bnviz.store.writer as writer
        submit = writer.AsyncWriter.submit
        presses = 2 if mode == "ctrl-c-twice" else 1
        def pressed_during_close(self, item, timeout=0.0):
            for _ in range(presses):  # Ctrl-C lands while close() hands the rows over
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            return submit(self, item, timeout)
        writer.AsyncWriter.submit = pressed_during_close
        try:
            rec.close()
        except KeyboardInterrupt:
            print("KeyboardInterrupt after close", flush=True)
        sys.exit(0)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
""")
STEPS = 100


def start(path, mode):
    return subprocess.Popen(
        [sys.executable, "-c", TRAINING % STEPS, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["default", "user"])
def test_sigterm_commits_the_buffered_rows_and_closes_the_file(tmp_path, mode):
    path = tmp_path / "run.h5"
    with start(path, mode) as child:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        assert not path.exists()  # nothing flushed yet: a SIGKILL now would lose every step
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=120)
    if mode == "default":  # the process still ends as SIGTERM's default action ends it
        assert child.returncode == -signal.SIGTERM, err
    else:  # the user's handler ran after the rows were safe, and chose how to end
        assert child.returncode == 3 and out.strip() == "user handler", err
    with open_run(path) as run:
        assert list(run.steps) == list(range(STEPS))
        assert run.writer_state == "closed" and not run.recording_failed


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_close_never_marks_a_file_closed_without_its_rows(tmp_path, presses):
    path = tmp_path / "run.h5"
    with start(path, "ctrl-c" if presses == 1 else "ctrl-c-twice") as child:
        out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "KeyboardInterrupt after close"
    with open_run(path) as run:
        if presses == 1:  # close() finished first: every row is in
            assert list(run.steps) == list(range(STEPS))
            assert run.writer_state == "closed" and not run.recording_failed
        else:  # stopped at once: the rows were lost, and the file says so
            assert run.recording_failed and len(run.steps) < STEPS
