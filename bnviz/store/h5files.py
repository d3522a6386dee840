"""How the store opens its HDF5 files: the one place that knows modes, SWMR, locking, retries,
and which errors are the file's fault.

Reading (``ReadFile``): SWMR read mode, from any number of places at once, in this process or
others, while a writer appends. HDF5 shares one file object between the opens of one process,
so a dataset opened by a second open can carry the first open's older extent: every dataset is
refreshed when opened and after each new commit. An HDF5 failure is retried a few times (a live
writer may be mid-flush), the last time on a fresh open of the file (an open file keeps the end
of file it first read, and refuses space the writer allocated since), and then reported as
``CorruptRunFile``; only h5py's errors are caught, so a caller's mistake (a wrong row index)
surfaces as that. ``being_written`` tells a file a writer is appending to right now.

Writing (``WriterClaim``, ``create_aside``, ``publish``): one recorder per path, enforced by an
``flock`` on a lock file beside the run; a new run is created under a temporary name and only
takes the run's name once it is valid, so a failed creation leaves nothing and ``overwrite``
never truncates a file that a viewer (or anyone) has open: the old file is replaced by rename.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import stat
import threading
import time
from pathlib import Path

import h5py
from h5py import h5f, h5p

from bnviz.store.errors import CorruptRunFile, EmptyRunFile, NotHDF5File, RunFileError, RunFileInUse, RunFileMissing

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per file is then the user's duty
    fcntl = None  # type: ignore[assignment]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Superblock (version 2/3) byte 11: the file consistency flags; HDF5 sets these while a writer has
# the file open (write access, SWMR write) and clears them at close. A killed writer leaves them.
SUPERBLOCK_FLAGS_AT = 11
OPEN_FOR_WRITE_FLAGS = 0x01 | 0x04
# A live writer writes to its file every 10 s at least (AsyncWriter's heartbeat): silence for
# longer than this means it is gone (its file, or its heartbeat in the file, stopped changing).
WRITER_SILENT_S = 30.0
READ_CACHE_BYTES = 32 * 1024 * 1024
# A SWMR reader retries a metadata read whose checksum fails (the writer may be mid-flush) with
# doubling back-off; HDF5's default of 100 attempts hangs for many minutes on a damaged file.
# 20 attempts wait about a second in all, ample for a flush to land.
SWMR_READ_ATTEMPTS = 20
# Then bnviz retries a failed read this many times, refreshing in between, before calling the
# file damaged.
READ_RETRIES = 2
RETRY_DELAY_S = 0.05
# Errors h5py raises for a failure of the file or of HDF5 (ValueError: an identifier HDF5 gave
# up on). The store checks a caller's arguments before h5py sees them, so inside ``read`` these
# are never the caller's mistake.
H5_ERRORS = (OSError, RuntimeError, ValueError)


# -- reading -------------------------------------------------------------------------------


def check_readable(path: Path) -> int:
    """The file's size, after the checks that need no HDF5; each failure names the problem."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RunFileMissing(path, "no such file") from None
    except PermissionError:
        raise RunFileError(path, "permission denied: this user may not open the folder that holds the file") from None
    except OSError as err:
        raise RunFileError(path, f"cannot look at the file ({err.strerror or err})") from err
    if stat.S_ISDIR(st.st_mode):
        raise NotHDF5File(path, "is a directory, not a bnviz recording")
    if not stat.S_ISREG(st.st_mode):
        raise NotHDF5File(path, "is not a regular file (a pipe, a device or a socket), not a bnviz recording")
    if st.st_size == 0:
        raise EmptyRunFile(path, "the file is empty (0 bytes): the recording never got its first write")
    try:
        with open(path, "rb") as fh:
            signed = _has_hdf5_signature(fh, st.st_size)
    except PermissionError:
        raise RunFileError(path, "permission denied: this user may not read the file") from None
    except OSError as err:
        raise RunFileError(path, f"cannot read the file ({err.strerror or err})") from err
    if not signed:
        raise NotHDF5File(path, "not an HDF5 file: a bnviz recording is the HDF5 file that bnviz.record writes")
    return st.st_size


def _has_hdf5_signature(fh, size: int) -> bool:
    # The superblock sits at 0, or after a user block at 512, 1024, 2048, ...
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        fh.seek(offset)
        if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def stored_end_address(path: Path) -> int | None:
    """The end-of-file address in a version 2/3 superblock (what bnviz writes), else None."""
    with open(path, "rb") as fh:
        head = fh.read(48)
    if head[:8] != HDF5_SIGNATURE or len(head) < 12 or head[8] < 2:
        return None
    size = head[9]  # bytes per address: base, extension, end-of-file, root
    start = 12 + 2 * size
    if len(head) < start + size:
        return None
    base = int.from_bytes(head[12 : 12 + size], "little")
    return base + int.from_bytes(head[start : start + size], "little")


def being_written(path: Path) -> bool:
    """A writer has the file open right now: HDF5's open-for-write flags are set and the file
    changed within ``WRITER_SILENT_S`` (a killed writer's file keeps the flags, but not changing).
    Read without HDF5, so it answers for a file HDF5 cannot read at this moment."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SUPERBLOCK_FLAGS_AT + 1)
            mtime = os.fstat(fh.fileno()).st_mtime
    except OSError:
        return False
    if head[:8] != HDF5_SIGNATURE or len(head) <= SUPERBLOCK_FLAGS_AT or head[8] < 2:
        return False
    return bool(head[SUPERBLOCK_FLAGS_AT] & OPEN_FOR_WRITE_FLAGS) and time.time() - mtime < WRITER_SILENT_S


def _hdf5_library():
    """The libhdf5 that h5py loaded (for a setting h5py does not expose), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                lib = line.split()[-1]
                if "/libhdf5" in lib and "hdf5_hl" not in lib and ".so" in lib:
                    return ctypes.CDLL(lib)
    except OSError:
        pass
    return None


def _read_fapl():
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_cache(0, 10007, READ_CACHE_BYTES, 0.75)
    lib = _hdf5_library()
    if lib is not None:
        lib.H5Pset_metadata_read_attempts(ctypes.c_int64(fapl.id), ctypes.c_uint(SWMR_READ_ATTEMPTS))
    return fapl


class _SharedFile:
    """The one h5py file of a run file in this process, and one Dataset object per name: HDF5
    shares an open file between the opens of one process, and refreshing a dataset that is open
    twice breaks both ("can't insert duplicate key"), so every reader in the process shares these."""

    def __init__(self, path: Path, key):
        self.key = key
        self.users = 0
        self.path = path
        self.file = self._open()
        self.datasets: dict[str, h5py.Dataset] = {}

    def reopen(self) -> None:
        """Open the file afresh (every reader of it in this process then uses the new open). The
        old open goes first: HDF5 would hand a second open of the file the first one's state. A
        file replaced at its path (``overwrite``) stays open as it is: its readers keep the old run."""
        try:
            st = self.path.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) != self.key:
            return
        self.datasets.clear()
        self.file.close()
        self.file = self._open()  # on failure self.file stays closed, and the next read tries again

    def _open(self) -> h5py.File:
        path = self.path
        try:
            fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY | h5f.ACC_SWMR_READ, fapl=_read_fapl())
        except H5_ERRORS as err:
            reason = str(err)
            if "truncated" in reason:
                raise CorruptRunFile(
                    path,
                    f"the file is truncated ({path.stat().st_size} bytes); it "
                    "was cut short, e.g. by an incomplete copy",
                ) from err
            if "unable to lock file" in reason:
                raise RunFileError(
                    path,
                    "another program holds the file open for writing (HDF5 "
                    "file lock); open it once that program has closed it",
                ) from err
            raise CorruptRunFile(path, f"HDF5 cannot open it, the file is damaged ({_first_line(reason)})") from err
        return h5py.File(fid)


_shared: dict = {}  # (device, inode) -> _SharedFile
_shared_lock = threading.Lock()


class ReadFile:
    """One reader's SWMR-read open of a run file: datasets by name, refreshed to the extent of
    this reader's latest commit read, errors of HDF5 retried and then named."""

    def __init__(self, path: Path):
        self.path = path
        self.size = check_readable(path)
        st = path.stat()
        key = (st.st_dev, st.st_ino)
        with _shared_lock:
            shared = _shared.get(key)
            if shared is None:
                shared = _SharedFile(path, key)
                _shared[key] = shared
            shared.users += 1
        self._shared = shared
        self._fresh: set[str] = set()

    @property
    def file(self) -> h5py.File:
        return self._shared.file

    def dataset(self, name: str) -> h5py.Dataset:
        """Dataset ``name``, refreshed once since this reader last read the commit record;
        CorruptRunFile if the file lacks it."""
        datasets = self._shared.datasets
        if name in self._fresh and name in datasets:  # (a reopen empties ``datasets``)
            return datasets[name]

        def load():
            if name in datasets:
                d = datasets[name]
            elif name not in self.file:  # a link lookup: opens nothing, so fails only if it is not there
                raise KeyError(name)
            else:
                try:
                    d = self.file[name]
                except KeyError as err:  # it is there, but HDF5 could not open it (mid-flush?): retried
                    raise OSError(str(err)) from err
            if not isinstance(d, h5py.Dataset):
                raise CorruptRunFile(self.path, f"{name} is not a dataset; the file is damaged")
            if d.external or d.is_virtual:  # a bnviz file holds its own data, never another file's
                raise CorruptRunFile(
                    self.path, f"dataset {name} takes its data from other files; bnviz does not read those"
                )
            try:
                d.refresh()  # another reader in this process may have opened it at an older extent
            except H5_ERRORS:
                datasets.pop(name, None)  # a failed refresh can leave the object unusable
                raise
            return d

        ds = datasets[name] = self.read(f"dataset {name}", load, missing_ok=False)
        self._fresh.add(name)
        return ds

    def mark_stale(self) -> None:
        """About to read the commit record: refresh each dataset before its next read."""
        self._fresh.clear()

    def read(self, what: str, fn, missing_ok: bool = True):
        """``fn()``; an HDF5 failure is retried (the last time on a fresh open of the file), then
        raised as CorruptRunFile naming ``what``.
        A KeyError from a name lookup means the file lacks it (unless ``missing_ok``: then it is
        the caller's)."""
        for attempt in range(READ_RETRIES + 1):
            if not self.file:  # a reopen failed: try again
                self._reopen()
            try:
                return fn()
            except KeyError as err:
                if missing_ok:
                    raise
                raise CorruptRunFile(
                    self.path, f"{what} is missing; the file is damaged or was not written by bnviz"
                ) from err
            except H5_ERRORS as err:
                if attempt == READ_RETRIES:
                    raise CorruptRunFile(
                        self.path, f"cannot read {what} ({_first_line(str(err))}); the file is damaged"
                    ) from err
                time.sleep(RETRY_DELAY_S * 2**attempt)
                self._fresh.clear()
                if attempt == READ_RETRIES - 1:
                    self._reopen()

    def _reopen(self) -> None:
        with _shared_lock:
            try:
                self._shared.reopen()
            except CorruptRunFile:
                pass  # the next attempt fails and names the problem

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with _shared_lock:
            shared.users -= 1
            if shared.users:
                return
            del _shared[shared.key]
        shared.datasets.clear()
        shared.file.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


# -- writing -------------------------------------------------------------------------------


def lock_path(path: Path) -> Path:
    """The lock file a recorder holds while it writes ``path``."""
    return path.with_name(f".{path.name}.bnviz-lock")


def aside_path(path: Path) -> Path:
    """Where a new run of ``path`` is created before it takes the run's name."""
    return path.with_name(f".{path.name}.bnviz-new")


class WriterClaim:
    """The right to write ``path``: an exclusive ``flock`` on its lock file, held until
    ``release``. A second claim (any process) raises RunFileInUse naming the holder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = None
        lock = lock_path(self.path)
        if fcntl is None:
            return
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunFileInUse(
                    f"cannot record to {self.path}: another bnviz recorder ({holder}) is writing "
                    "it; overwrite=True does not change that. Wait for that run to finish, stop "
                    "it, or record to another path"
                ) from None
            try:  # the holder before us may have removed the lock file: then lock the new one
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0
        )
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(lock_path(self.path))  # still ours: only a lock holder removes it
        except OSError:
            pass
        os.close(fd)

    def __del__(self):
        self.release()


def create_aside(path: Path, image: bytes) -> h5py.File:
    """Write the new run's file ``image`` under ``aside_path`` and open it for writing. Plain
    writes fail cleanly on a full disk (OSError, nothing left behind). Nothing else uses that
    name while the claim is held, so a leftover of a killed writer is simply replaced."""
    aside = aside_path(path)
    try:
        with open(aside, "wb") as fh:
            fh.write(image)
    except BaseException:
        discard_aside(path)
        raise
    return h5py.File(aside, "r+", libver="latest")


def publish(path: Path, overwrite: bool) -> None:
    """Give the finished-enough new file its run's name. Without ``overwrite`` an existing file is
    never replaced (FileExistsError); with it, readers of the old file keep their (old) file."""
    new = aside_path(path)
    if overwrite:
        os.replace(new, path)
        return
    try:
        os.link(new, path)
    except FileExistsError:
        raise FileExistsError(
            f"cannot record to {path}: a file of that name appeared while the "
            "run was being created; the new run is in "
            f"{new}"
        ) from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise FileExistsError(
                f"cannot record to {path}: a file of that name appeared while "
                f"the run was being created; the new run is in {new}"
            ) from None
        os.replace(new, path)
        return
    os.unlink(new)


def discard_aside(path: Path) -> None:
    try:
        os.unlink(aside_path(path))
    except OSError:
        pass


# -- write errors in words -----------------------------------------------------------------

_PLAIN = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file reached the size limit of this process or file system",
    errno.EIO: "the disk reported an I/O error",
    errno.EROFS: "the file system became read-only",
    errno.ENOENT: "the file or its folder was removed",
    errno.ESTALE: "the file was removed on the file server",
    errno.EACCES: "permission to write the file was withdrawn",
}


def write_failure(err: BaseException, folder: Path) -> str:
    """What went wrong with a write, in words a user acts on (HDF5's own text stays in the
    chained exception): from the system error number, else from the free space left."""
    code: int | None = getattr(err, "errno", None)
    if code not in _PLAIN:
        m = re.search(r"errno = (\d+)", str(err))
        code = int(m.group(1)) if m else None
    if code not in _PLAIN:
        try:
            st = os.statvfs(folder)
            if st.f_bavail * st.f_frsize < 1024 * 1024:
                code = errno.ENOSPC
        except OSError:
            pass
    return _PLAIN.get(code or 0, "a write to the file failed")
