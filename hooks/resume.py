"""``resume=True``: what a recording continues from, the segments already written at its path
(``bnviz.store.segments``), and whether the model still fits them."""

from __future__ import annotations

from bnviz.store import schema
from bnviz.store.errors import RunFileError
from bnviz.store.segments import open_joined, segment_paths


def previous_recording(path) -> dict | None:
    """What a resumed recording needs from the files already written to ``path``; None if none."""
    existing = segment_paths(path)
    if not existing:
        return None
    try:
        run = open_joined(existing[0])
    except RunFileError as err:
        raise ValueError(
            f"resume=True: cannot continue {existing[0]}: {err.problem}. Move it away, "
            "or pass overwrite=True (without resume) to start again"
        ) from err
    with run:
        # the reader joins only segments of the first one's format (docs/format.md, Resumed runs)
        if run.format_version != schema.FORMAT_VERSION_TEXT:
            raise ValueError(
                f"resume=True: {existing[0]} is in format {run.format_version} and this bnviz writes "
                f"{schema.FORMAT_VERSION_TEXT}; the segments of one recording share a format. Resume with the bnviz "
                "version that started the recording, or record to another path"
            )
        steps = run.steps
        train = steps[run.rows("train")]
        last = train if len(train) else steps
        return {
            "path": existing[0],
            "segments": len(existing),
            "probes": run._probes,
            "train_steps": train,
            "last_step": int(last.max()) if len(last) else -1,
            "layers": {(li.path, li.num_features) for li in run.layers},
            "run_name": run.meta.get("run_name", existing[0].stem),
            "recorded_ranks": run.meta.get("recorded_ranks", "all"),
        }


def train_rows_before(previous: dict | None, step: int) -> int:
    """Train rows the recording holds before ``step`` (0 unless resumed)."""
    if previous is None:
        return 0
    return int((previous["train_steps"] < step).sum())


def check_resumable(previous: dict, instrumentation) -> None:
    """The model must have the BN layers of the recording it continues (any forward order)."""
    before = previous["layers"]
    now = {(li.path, li.num_features) for li in instrumentation.layers}
    if now != before or instrumentation.probes_per_layer != previous["probes"]:
        gone = ", ".join(sorted(p for p, _ in before - now)[:3]) or "none"
        new = ", ".join(sorted(p for p, _ in now - before)[:3]) or "none"
        raise ValueError(
            f"resume=True: the model's BN layers (or probes) differ from those of "
            f"{previous['path']} (missing now: {gone}; new: {new}); record this "
            "model to another path"
        )
