"""Pack a finished run for archiving or shipping: gzip-compressed, chunks no longer than the data.

A live writer cannot compress (SWMR + compression bloats files, NOTES.md) and sizes its chunks
for appends, so a short run carries mostly empty chunk space. Packing rewrites every dataset
and attribute unchanged in value; readers see the same run.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from bnviz.store.reader import open_run

# Rows copied per read, so packing a multi-GB run never holds it in memory.
COPY_ROWS = 4096


def _packed_chunks(ds: h5py.Dataset):
    if ds.chunks is None or ds.shape[0] == 0:
        return None
    return (min(ds.chunks[0], ds.shape[0]),) + tuple(ds.chunks[1:])


def _copy(src: h5py.Group, dst: h5py.Group) -> None:
    dst.attrs.update(dict(src.attrs))
    for name, item in src.items():
        if isinstance(item, h5py.Group):
            _copy(item, dst.create_group(name))
            continue
        chunks = _packed_chunks(item)
        opts = dict(chunks=chunks, compression="gzip", shuffle=True) if chunks else {}
        out = dst.create_dataset(name, shape=item.shape, dtype=item.dtype, **opts)
        if item.shape == ():
            out[()] = item[()]
        else:
            for start in range(0, item.shape[0], COPY_ROWS):
                out[start : start + COPY_ROWS] = item[start : start + COPY_ROWS]
        out.attrs.update(dict(item.attrs))


def pack_run(src, dst) -> Path:
    """Write a packed copy of the closed run ``src`` to ``dst`` (replaced if it exists)."""
    src, dst = Path(src), Path(dst)
    with open_run(src) as run:  # refuses non-bnviz or newer files with a clear error
        if run.writer_state == "live":
            raise RuntimeError(f"{src} is still being written; pack it after the run has closed")
    tmp = dst.with_name(dst.name + ".packing")
    with h5py.File(src, "r") as fin, h5py.File(tmp, "w", libver="latest") as fout:
        _copy(fin, fout)
    os.replace(tmp, dst)
    return dst
