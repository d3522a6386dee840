"""What ``bnviz info`` says about a run: a JSON-ready description plus its findings.

``describe(run)`` returns the stable structure documented in docs/cli.md (``INFO_VERSION``
changes when a key changes meaning or disappears; new keys may be added at any time);
``format_text`` renders it for people.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter

import numpy as np

from bnviz.analysis.findings import Thresholds, findings
from bnviz.plaintext import printable
from bnviz.store.ranks import ONLY_RANK_ZERO, rank_zero_alone
from bnviz.store.schema import PHASE_NAMES

INFO_VERSION = 1
WRITER_TEXT = {
    "live": "being written",
    "closed": "closed",
    "writer gone": "writer gone (killed, or silent for too long)",
}
LAYER_KEYS = (
    "index",
    "path",
    "kind",
    "num_features",
    "eps",
    "momentum",
    "affine",
    "track_running_stats",
    "activation",
    "activation_source",
    "zone_rule",
    "zone_threshold",
    "probe_channels",
    "activation_via",
    "activation_seen",
    "zone_input",
)


def describe(run, thresholds: Thresholds | None = None) -> dict:
    thr = thresholds or Thresholds()
    steps = np.asarray(run.steps)
    phases = np.asarray(run.phases)
    times = np.asarray(run.times, dtype=np.float64)
    meta = _json_safe(dict(run.meta))
    return {
        "bnviz_info": INFO_VERSION,
        "path": os.path.abspath(run.path),
        "file_size": os.path.getsize(run.path),
        "format_version": _version_text(run.format_version),
        "estimator_notice": run.estimator_notice,
        "writer_state": run.writer_state,
        "recording_failed": bool(run.recording_failed),
        "dropped_steps": int(run.dropped_steps),
        "model": meta.get("model_class"),
        "meta": meta,
        "steps": {
            "first": int(steps[0]) if len(steps) else None,
            "last": int(steps[-1]) if len(steps) else None,
            "rows": int(len(steps)),
            "phases": {name: int((phases == code).sum()) for code, name in PHASE_NAMES.items()},
        },
        "duration_s": _finite(times[-1] - times[0]) if len(times) else None,
        "schedule": {
            "configured": meta.get("schedule"),
            "summary": _tier(steps),
            "channels": _tier(run.channel_steps),
            "hist": _tier(run.hist_steps),
        },
        "scalars": list(run.scalar_names),
        "ranks": {
            "world_size": int(meta.get("world_size", 1)),
            "recorded": ONLY_RANK_ZERO if rank_zero_alone(run) else "all",
            "present": [int(r.meta.get("rank", 0)) for r in getattr(run, "ranks", [run])],
            "problems": {str(k): v for k, v in getattr(run, "rank_problems", {}).items()},
        },
        "layers": [_layer(li) for li in run.layers],
        "thresholds": thr.to_dict(),
        "findings": [_json_safe(f.to_dict()) for f in findings(run, thr)],
    }


def ranks_text(info: dict) -> str | None:
    """What ``describe`` found of a distributed job's ranks, in words; None for one process."""
    ranks = info["ranks"]
    if ranks["world_size"] <= 1:
        return None
    if ranks["recorded"] == ONLY_RANK_ZERO:
        return f"a job of {ranks['world_size']}: rank 0 alone recorded"
    return f"{len(ranks['present'])} of {ranks['world_size']} rank files read"


def _version_text(v) -> str:
    return ".".join(str(x) for x in v) if isinstance(v, (tuple, list)) else str(v)


def _tier(steps) -> dict:
    """Rows, first/last step and the usual spacing of one tier's rows ("every" N steps)."""
    s = np.unique(np.asarray(steps, dtype=np.int64))
    gaps = np.diff(s)
    return {
        "rows": int(len(np.asarray(steps))),
        "first": int(s[0]) if len(s) else None,
        "last": int(s[-1]) if len(s) else None,
        "every": int(np.median(gaps)) if len(gaps) else None,
    }


def _layer(li) -> dict:
    d = dataclasses.asdict(li) if dataclasses.is_dataclass(li) and not isinstance(li, type) else dict(vars(li))
    return _json_safe({k: d.get(k) for k in LAYER_KEYS})


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _json_safe(obj):
    """Plain JSON types; NaN/Inf become null (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _finite(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def duration_text(s: float | None) -> str:
    if s is None:
        return "unknown"
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s" if m else f"{s:.1f} s"


def _activation_text(li: dict) -> str:
    """The activation a layer feeds and where its zone is measured, e.g. "relu after add (zone at relu's input)"."""
    act, via = li.get("activation") or "unknown", li.get("activation_via")
    if li.get("zone_input") == "activation":
        return f"{act} after {via} (zone at {act}'s input)"
    if li.get("zone_input") == "none" and li.get("activation_seen"):
        return f"none: {li['activation_seen']} after {via}, not measurable, no zone claim"
    return act


def format_text(info: dict, show_all: bool = False, limit: int = 20) -> str:
    """The human-readable ``bnviz info``: header, schedule, layers, findings (worst first)."""
    st, sch = info["steps"], info["schedule"]
    phases = ", ".join(f"{n} {name}" for name, n in st["phases"].items() if n)

    def every(t: dict) -> str:
        if not t["rows"]:
            return "none"
        return f"{t['rows']} rows, every " + ("step" if (t["every"] or 1) == 1 else f"{t['every']} steps")

    meta = info["meta"]
    lines = [
        f"{info['path']}",
        f"  file       {size_text(info['file_size'])}, format {info['format_version']}, "
        f"{WRITER_TEXT.get(info['writer_state'], info['writer_state'])}"
        + (", recording FAILED (write error)" if info["recording_failed"] else "")
        + (f", {info['dropped_steps']} steps dropped (writer fell behind)" if info["dropped_steps"] else ""),
        f"  model      {info['model'] or 'unknown'}"
        + (f" (torch {meta['torch_version']})" if meta.get("torch_version") not in (None, "unknown") else "")
        + (f", started {meta['start_time']}" if meta.get("start_time") else ""),
        f"  steps      {st['first']} to {st['last']}: {st['rows']} rows ({phases or 'none'}), "
        f"took {duration_text(info['duration_s'])}"
        if st["rows"]
        else "  steps      none recorded yet",
        f"  schedule   summary {every(sch['summary'])}; channels {every(sch['channels'])}; "
        f"histograms {every(sch['hist'])}",
    ]
    if info.get("estimator_notice"):
        lines.append(f"  NOTE       {info['estimator_notice']}")
    if info["scalars"]:
        lines.append(f"  scalars    {', '.join(info['scalars'])}")
    ranks = info["ranks"]
    if ranks_text(info):
        lines.append(f"  ranks      {ranks_text(info)}")
        lines += [f"    rank {r}: {problem}" for r, problem in ranks["problems"].items()]
    kinds = Counter(li["kind"] for li in info["layers"])
    lines.append(f"  layers     {len(info['layers'])} (" + ", ".join(f"{k} x{n}" for k, n in kinds.items()) + ")")
    shown = info["layers"] if show_all else info["layers"][:limit]
    width = max((len(li["path"]) for li in shown), default=0)
    for li in shown:
        act = _activation_text(li)
        lines.append(
            f"    {li['index']:>3} {li['path']:<{width}}  {li['kind']:<13} {li['num_features'] or 0:>5} ch -> {act}"
        )
    if len(shown) < len(info["layers"]):
        lines.append(f"    ... {len(info['layers']) - len(shown)} more (--all lists them)")
    fs = info["findings"]
    lines.append(f"  findings   {len(fs) or 'none'}")
    for f in fs if show_all else fs[:limit]:
        span = (
            ""
            if f["first_step"] is None
            else (
                f" steps {f['first_step']}-{f['last_step']}"
                if f["last_step"] != f["first_step"]
                else f" step {f['first_step']}"
            )
        )
        lines.append(f"    {f['severity']:.2f} {f['kind']:<15} {f['layer']}{span}: {f['message']}")
    if not show_all and len(fs) > limit:
        lines.append(f"    ... {len(fs) - limit} more (--all lists them)")
    return "\n".join(printable(line) for line in lines)  # names from the file reach no terminal raw
