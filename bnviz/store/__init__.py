"""The bnviz recording file: write it (RunWriter, AsyncWriter), read it (open_run -> Run).

Imports neither torch nor Qt. The format is documented in docs/format.md.
"""

from bnviz.store.block import Block
from bnviz.store.errors import (
    CorruptRunFile,
    EmptyRunFile,
    NewerFormatError,
    NotBnvizRun,
    NotHDF5File,
    RecordingWarning,
    RecordingWriteError,
    RunFileError,
    RunFileInUse,
    RunFileMissing,
)
from bnviz.store.reader import Histogram, LayerInfo, Run, open_run
from bnviz.store.writer import AsyncWriter, RunWriter

__all__ = [
    "AsyncWriter",
    "Block",
    "CorruptRunFile",
    "EmptyRunFile",
    "Histogram",
    "LayerInfo",
    "NewerFormatError",
    "NotBnvizRun",
    "NotHDF5File",
    "RecordingWarning",
    "RecordingWriteError",
    "Run",
    "RunFileError",
    "RunFileInUse",
    "RunFileMissing",
    "RunWriter",
    "open_run",
]
