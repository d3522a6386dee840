"""A generator of crafted recordings: a good synthetic run, then one change each that a damaged
disk, a buggy tool or an attacker could make (wrong types, JSON objects where lists belong,
huge counts, missing or misshapen datasets, links out of the file, hostile names).

``CRAFTED`` maps a case name to ``edit(f)``, applied to an ``h5py.File`` opened "r+" on a copy
of the good run; ``craft(good, folder, name)`` writes that case's file. No file is committed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from bnviz.store.synthetic import write_synthetic_run

LAYERS, CHANNELS, STEPS = 3, 4, 40


def write_good(path: Path, layer_names=None) -> None:
    write_synthetic_run(
        path, layers=LAYERS, channels=CHANNELS, steps=STEPS, eval_every=10, flush_rows=16, layer_names=layer_names
    )


def _attr(name, value):
    def edit(f):
        f.attrs[name] = value

    return edit


def _drop_attr(name):
    def edit(f):
        del f.attrs[name]

    return edit


def _table(change):
    """Edit the layer table as JSON (``change(list) -> new value``, any JSON)."""

    def edit(f):
        table = json.loads(f["layers"][()])
        new = change(table)
        del f["layers"]
        f.create_dataset(
            "layers", data=new if isinstance(new, str) else json.dumps(new), dtype=h5py.string_dtype("utf-8")
        )

    return edit


def _layer_key(key, value, layer=0):
    def change(table):
        table[layer][key] = value
        return table

    return _table(change)


def _replace(name, data=None, **kw):
    """Swap dataset ``name`` for other data (or a group, if ``data`` is the string "group")."""

    def edit(f):
        del f[name]
        if isinstance(data, str) and data == "group":
            f.create_group(name)
        elif data is not None:
            f.create_dataset(name, data=data, **kw)

    return edit


def _delete(name):
    def edit(f):
        del f[name]

    return edit


def _set(name, index, value):
    def edit(f):
        ds = f[name]
        ds[index] = value

    return edit


def _commit(values):
    return _replace("commit", np.asarray(values))


def _huge_extent(f):
    """summary_step claims 10^12 rows (never written: no chunk holds them) and commit agrees."""
    f["summary_step"].resize((10**12,))
    counts = f["commit"][()]
    counts[0] = 10**12
    f["commit"][...] = counts


def _external_link(f):
    other = Path(f.filename).with_name("elsewhere.h5")
    with h5py.File(other, "w") as g:
        g["x"] = np.arange(10, dtype=np.int64)
    del f["summary_step"]
    f["summary_step"] = h5py.ExternalLink(str(other), "/x")


def _external_storage(f):
    """summary_step's raw data lives in another file (HDF5 external storage)."""
    raw = Path(f.filename).with_name("raw.bin")
    raw.write_bytes(np.arange(STEPS + 4, dtype="<i8").tobytes())
    del f["summary_step"]
    f.create_dataset("summary_step", shape=(STEPS + 4,), dtype="<i8", external=[(str(raw), 0, h5py.h5f.UNLIMITED)])


def _names(*names):
    def change(table):
        for layer, name in zip(table, names):
            layer["path"] = name
        return table

    return _table(change)


CRAFTED = {
    # root attributes
    "format missing": _drop_attr("format"),
    "format wrong": _attr("format", "netcdf"),
    "format is a number": _attr("format", 7),
    "version garbage": _attr("format_version", "one.two"),
    "version a number": _attr("format_version", 5),
    "version newer major": _attr("format_version", "9.0"),
    "version missing": _drop_attr("format_version"),
    "world_size 10^9": _attr("world_size", 10**9),
    "world_size 0": _attr("world_size", 0),
    "world_size text": _attr("world_size", "two"),
    "world_size array": _attr("world_size", np.arange(4)),
    "rank beyond world": lambda f: (_attr("world_size", 2)(f), _attr("rank", 5)(f)),
    "rank negative": lambda f: (_attr("world_size", 2)(f), _attr("rank", -3)(f)),
    "pid huge": _attr("pid", 2**62),
    "pid text": _attr("pid", "abc"),
    "host a number": _attr("host", 12),
    "flush_seconds text": _attr("flush_seconds", "soon"),
    "flush_seconds nan": _attr("flush_seconds", float("nan")),
    "schedule a JSON list": _attr("schedule", "[1, 2]"),
    "schedule not JSON": _attr("schedule", "{every: 1"),
    "schedule null": _attr("schedule", "null"),
    "user_meta a JSON list": _attr("user_meta", "[]"),
    "engine a number": _attr("engine", "5"),
    "deeply nested user_meta": _attr("user_meta", "[" * 100_000 + "]" * 100_000),
    "huge attribute": _attr("junk", np.zeros(2_000_000)),
    # the layer table
    "layers a JSON object": _table(lambda t: {"a": 1}),
    "layers empty": _table(lambda t: []),
    "layers of numbers": _table(lambda t: [1, 2, 3]),
    "layers not JSON": _table(lambda t: "[{"),
    "layers a number dataset": _replace("layers", np.arange(3)),
    "layers missing": _delete("layers"),
    "layer without path": _table(lambda t: [{k: v for k, v in d.items() if k != "path"} for d in t]),
    "layer path a number": _layer_key("path", 42),
    "layer paths repeated": _table(lambda t: [{**t[0], "path": t[1]["path"]}] + t[1:]),
    "layer index wrong": _layer_key("index", 7),
    "num_features 0": _layer_key("num_features", 0),
    "num_features 10^12": _layer_key("num_features", 10**12),
    "num_features text": _layer_key("num_features", "4"),
    "num_features mismatch": _layer_key("num_features", CHANNELS + 1),
    "probe_channels an object": _layer_key("probe_channels", {"a": 1}),
    "probe channel out of range": _layer_key("probe_channels", [99]),
    "kind a number": _layer_key("kind", 5),
    "eps text": _layer_key("eps", "small"),
    "affine text": _layer_key("affine", "yes"),
    "more layers than data": _table(lambda t: t + [{**t[0], "index": len(t), "path": "extra"}]),
    "fewer layers than data": _table(lambda t: t[:-1]),
    # datasets
    "summary_step missing": _delete("summary_step"),
    "summary missing": _delete("summary"),
    "channels/0 missing": _delete("channels/0"),
    "commit missing": _delete("commit"),
    "status missing": _delete("status"),
    "scalar_names missing": _delete("scalar_names"),
    "summary a group": _replace("summary", "group"),
    "summary of text": _replace("summary", np.full((STEPS, LAYERS, 29), b"x", "S1")),
    "summary_step of floats": _replace("summary_step", np.arange(STEPS + 4, dtype=np.float64), maxshape=(None,)),
    "quantiles misshapen": _replace("quantiles", np.zeros((STEPS + 4, LAYERS, 3, 2), np.float32)),
    "probes with 10^6 channels": _replace(
        "probes",
        shape=(0, LAYERS, 10**6, 7),
        dtype=np.float32,
        maxshape=(None, LAYERS, 10**6, 7),
        chunks=(1, 1, 1000, 7),
    ),
    "channels/0 extra axis": _replace("channels/0", np.zeros((STEPS + 4, 14, CHANNELS, 2), np.float32)),
    "commit 10^12": _commit([10**12, 0, 0, 0]),
    "commit negative": _commit([-5, 0, 0, 0]),
    "commit two numbers": _commit([3, 3]),
    "commit floats": _commit([3.0, 1.0, 1.0, 1.0]),
    "commit text": _commit(np.array([b"a", b"b", b"c", b"d"])),
    "extent 10^12 unwritten": _huge_extent,
    "steps go back": _set("summary_step", slice(5, 6), 1),
    "steps negative": _set("summary_step", slice(0, 1), -7),
    "steps huge": _set("summary_step", slice(-1, None), 2**62),
    "phase code 7": _set("summary_phase", slice(3, 4), 7),
    "status misshapen": _replace("status", np.zeros(2)),
    "status nan": _set("status", slice(None), np.nan),
    "status text": _replace("status", np.array([b"a", b"b", b"c"])),
    "scalar_names numbers": _replace("scalar_names", np.zeros(32, np.int64)),
    "scalar name with escapes": _set("scalar_names", 0, b"\x1b[31mloss\x07"),
    "negative histogram counts": _set("hist_counts", slice(None), -(2**31)),
    "histogram range nan and inf": _set("hist_range", slice(None), np.array([np.nan, np.inf], np.float32)),
    "summary all inf": _set("summary", slice(None), np.inf),
    "summary all nan": _set("summary", slice(None), np.nan),
    "summary 1e38": _set("summary", slice(None), np.float32(3e38)),
    "channels all nan": _set("channels/1", slice(None), np.nan),
    "dangling soft link": lambda f: (_delete("summary")(f), f.__setitem__("summary", h5py.SoftLink("/nowhere"))),
    "external link": _external_link,
    "external raw storage": _external_storage,
    # names: valid files that must show as plain text and export to distinct files
    "names with terminal escapes": _names("\x1b[31mred\x1b[0m", "bell\x07\x00nul", "\u202eevil"),
    "names with markup": _names("<b>bold</b>", "a&amp;b", "<img src=x onerror=alert(1)>"),
    "names that collide as files": _names("a/b", "a_b", "a b"),
    "names over 250 bytes": _names("x" * 300, "ü" * 200, "y" * 300 + "z"),
}


def craft(good: Path, folder: Path, name: str) -> Path:
    """Write case ``name`` of ``CRAFTED`` into ``folder`` (a copy of ``good``, edited)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+", libver="latest") as f:
        CRAFTED[name](f)
    return path
