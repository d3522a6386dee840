"""One recording per distributed job: rank 0's file and its siblings, joined when read.

Naming rule (docs/format.md, "Distributed runs"): every rank calls ``bnviz.record(model, path)``
with the same ``path``; rank 0 writes ``path`` itself, rank r > 0 writes ``<stem>.rank<r><suffix>``
beside it (run.h5, run.rank1.h5, run.rank2.h5 ...). Each file is a complete ordinary run of that
rank's local statistics whose root attributes add ``RANK_KEYS``. Files of one job share
``world_size`` and ``job_id``. A rank that died before its first flush leaves no file; one killed
later leaves every step flushed before the kill.

Imports neither torch nor Qt.
"""

from __future__ import annotations

import re
from pathlib import Path

from bnviz.store.errors import RunFileError
from bnviz.store.reader import Run
from bnviz.store.segments import open_joined

# Root attributes of a rank file (absent from a single-process run).
RANK_KEYS = ("rank", "world_size", "local_rank", "dist_backend", "job_id", "recorded_ranks")
# Which ranks of a job record ("recorded_ranks"): each its own file, or rank 0 alone (then a reader
# looks for no sibling files); bnviz.record(ranks=...) takes the same words
ONLY_RANK_ZERO = "zero"
RECORDED_RANKS = ("all", ONLY_RANK_ZERO)


def checked_recorded_ranks(ranks) -> str:
    """``ranks=`` of ``bnviz.record`` and of the framework callbacks, or a ValueError saying what to give."""
    if ranks not in RECORDED_RANKS:
        raise ValueError(
            f"ranks={ranks!r}: choose 'all' (every rank records its own file) or 'zero' "
            "(only the process of global rank 0 records): docs/distributed.md"
        )
    return ranks


def records_on_rank(ranks: str, rank: int) -> bool:
    """Whether the process of global rank ``rank`` writes a file under ``ranks=`` (``bnviz.record``
    and the framework callbacks, which know the rank from their framework, decide alike)."""
    return ranks != ONLY_RANK_ZERO or int(rank) == 0


_RANK_NAME = re.compile(r"^(?P<stem>.+)\.rank[1-9][0-9]*(?P<suffix>\.[^.]*)?$")


class RankFilesError(RunFileError):
    """Some rank files of a job are missing, unreadable, or belong to another job."""

    def __init__(self, path, problems: dict[int, str]):
        self.problems = dict(problems)
        lines = "; ".join(f"rank {r}: {p}" for r, p in sorted(self.problems.items()))
        super().__init__(
            path,
            f"incomplete distributed recording ({lines}). Copy every "
            "<stem>.rank<r><suffix> file beside rank 0's, or read the ranks "
            "present with open_ranks(run, strict=False)",
        )


def rank_path(path, rank: int) -> Path:
    """Where rank ``rank`` of a job recording to ``path`` writes its file."""
    path = Path(path)
    if rank == 0:
        return path
    return path.with_name(f"{path.stem}.rank{int(rank)}{path.suffix}")


def job_path(path) -> Path:
    """Rank 0's path (the job's ``path``) from any rank file's path."""
    path = Path(path)
    m = _RANK_NAME.match(path.name)
    return path.with_name(m["stem"] + (m["suffix"] or "")) if m else path


def rank_of(run: Run) -> int:
    """The rank that wrote ``run`` (0 for a single-process run)."""
    return int(run.meta.get("rank", 0))


def world_size_of(run: Run) -> int:
    """Processes in the job that wrote ``run`` (1 for a single-process run)."""
    return int(run.meta.get("world_size", 1))


def rank_zero_alone(run: Run) -> bool:
    """``run`` is rank 0's file of a job of several processes where it alone recorded."""
    return world_size_of(run) > 1 and run.meta.get("recorded_ranks") == ONLY_RANK_ZERO


def scan(run: Run) -> tuple[dict[int, Run], dict[int, str]]:
    """The job's runs by rank (``run`` itself included, others opened) and a problem per rank."""
    world, me = world_size_of(run), rank_of(run)
    base = job_path(run.path)
    runs: dict[int, Run] = {me: run}
    problems: dict[int, str] = {}
    if rank_zero_alone(run):
        return runs, problems
    for r in range(world):
        if r == me:
            continue
        p = rank_path(base, r)
        if not p.exists():
            problems[r] = (
                f"{p.name} is missing (that rank did not call bnviz.record, died "
                "before its first flush, or its file was not copied here)"
            )
            continue
        try:
            other = open_joined(p)
        except RunFileError as err:
            problems[r] = f"{p.name} cannot be read ({err.problem})"
            continue
        why = _mismatch(run, other, r)
        if why:
            other.close()
            problems[r] = f"{p.name} {why}"
        else:
            runs[r] = other
    return runs, problems


def _mismatch(run: Run, other: Run, rank: int) -> str | None:
    if rank_of(other) != rank:
        return f"says it is rank {rank_of(other)}"
    if world_size_of(other) != world_size_of(run):
        return f"is from a job of {world_size_of(other)} ranks, not {world_size_of(run)} (an earlier job?)"
    if other.meta.get("job_id") != run.meta.get("job_id"):
        return (
            f"is from another job (job_id {other.meta.get('job_id')!r}, "
            f"not {run.meta.get('job_id')!r}); an earlier run's file?"
        )
    return None


def open_ranks(run: Run, strict: bool = True) -> list[Run]:
    """Every rank's run of the job ``run`` belongs to, rank 0 first; ``run`` itself is included
    (opened from any rank's file). A single-process run gives ``[run]``.

    strict: raise RankFilesError naming each missing, unreadable or foreign rank file; with
    False those ranks are left out (``rank_of`` tells which rank each run is)."""
    runs, problems = scan(run)
    if problems and strict:
        close_ranks(runs.values(), keep=run)
        raise RankFilesError(job_path(run.path), problems)
    return [runs[r] for r in sorted(runs)]


def rank_problems(run: Run) -> dict[int, str]:
    """{rank: what is wrong with its file} for the job of ``run``; {} when all are readable."""
    runs, problems = scan(run)
    close_ranks(runs.values(), keep=run)
    return problems


def refresh_ranks(runs) -> bool:
    """Refresh every run (live recordings); True when any got new rows."""
    return any([r.refresh() for r in runs])  # noqa: C419


def close_ranks(runs, keep: Run | None = None) -> None:
    """Close the runs ``open_ranks`` opened (all but ``keep``)."""
    for r in runs:
        if r is not keep:
            r.close()
