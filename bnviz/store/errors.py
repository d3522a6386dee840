"""Errors of the store. Each message names the file and the problem, and what to do about it.

Readers raise ``RunFileError`` subclasses (the h5py error, if any, is chained as ``__cause__``);
the writer raises ``RecordingWriteError`` when the file can no longer be written.
"""

from __future__ import annotations

import os


class RunFileError(Exception):
    """A file cannot be read as a bnviz run."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class RunFileMissing(RunFileError, FileNotFoundError):
    pass


class EmptyRunFile(RunFileError):
    pass


class NotHDF5File(RunFileError):
    pass


class NotBnvizRun(RunFileError):
    pass


class CorruptRunFile(RunFileError):
    """Truncated or damaged: HDF5 cannot read part of the file."""


class NewerFormatError(RunFileError):
    def __init__(self, path, file_version: str, reader_version: str):
        self.file_version = file_version
        self.reader_version = reader_version
        super().__init__(
            path,
            f"written in bnviz format {file_version}, but this bnviz reads format "
            f"{reader_version} and older; upgrade bnviz (pip install -U bnviz) to open it",
        )


class RunFileInUse(FileExistsError):
    """Another recorder is writing the file (one writer per file, with or without overwrite)."""


class RecordingWriteError(OSError):
    """Writing the recording failed (disk full, file removed, I/O error); recording must stop.

    ``problem`` says what happened in plain words (HDF5's own text is in ``__cause__``), ``kept``
    what the file holds now. The file keeps every row committed before the failure."""

    def __init__(self, path, problem: str, kept: str = ""):
        self.path = os.fspath(path)
        self.problem = problem
        self.kept = kept
        super().__init__(f"{self.path}: {problem}")


class RecordingWarning(RuntimeWarning):
    """Recording stopped (or lost data) while training went on."""
