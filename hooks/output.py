"""Where a recording's rows go: its run file, created at the first hand-over, and the background
thread that writes it (``bnviz.store.writer``). Nothing here blocks the training longer than
WRITER_WAIT_S, and a writer that fails has said why once (its RecordingWriteError)."""

from __future__ import annotations

from bnviz.store.writer import AsyncWriter, RunWriter

from .notices import warn

# The longest the training thread waits for the writer: at close, and for a flush that must land.
WRITER_WAIT_S = 60.0


class Output:
    """The file at ``path`` (held by ``claim``, a ``WriterClaim``) and its writer thread."""

    def __init__(self, path, claim, *, overwrite: bool, max_pending: int):
        self.path, self.claim = path, claim
        self._overwrite, self._max_pending = overwrite, max_pending
        self.writer: AsyncWriter | None = None

    @property
    def behind(self) -> bool:
        """The writer has as many blocks queued as it may: a flush that need not land waits."""
        return self.writer is not None and self.writer.pending >= self._max_pending

    def layer_table(self) -> list[dict] | None:
        """The file's layer table, or None before the file exists."""
        return None if self.writer is None else self.writer.writer.layers

    def hand_over(self, item, wait: bool, create) -> bool:
        """Queue ``item`` (a block pending on the device) for the file, created first by
        ``create()`` -> (layers, meta, probes) if it does not exist yet. ``wait``: for room in the
        queue, up to WRITER_WAIT_S (else the rows are lost, and said so). False: the writer failed."""
        if self.writer is None:
            layers, meta, probes = create()
            file = RunWriter(
                self.path, layers=layers, meta=meta, probes=probes, overwrite=self._overwrite, claim=self.claim
            )
            self.writer = AsyncWriter(file, max_pending=self._max_pending)
        if self.writer.submit(item, timeout=WRITER_WAIT_S if wait else 0.0):
            return True
        if self.writer.error is not None:
            return False
        warn(
            f"bnviz: the writer of {self.path} did not take the last rows within "
            f"{WRITER_WAIT_S:.0f} s (a slow or hung disk?); they are not in the file"
        )
        return True

    def wait_idle(self) -> None:
        if self.writer is not None:
            self.writer.wait_idle(WRITER_WAIT_S)

    def close(self, failed: bool = False) -> None:
        """Close the file with every row handed over (``failed``: rows were lost, say so in the
        file); never blocks longer than WRITER_WAIT_S."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            if not writer.close(timeout=WRITER_WAIT_S, failed=failed):
                warn(
                    f"bnviz: the writer of {self.path} did not finish within {WRITER_WAIT_S:.0f} s; "
                    "it goes on in the background (committed rows are safe)"
                )
        except Exception:  # noqa: BLE001 - its own warning raised (warnings as errors): nothing to add
            pass
