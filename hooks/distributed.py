"""What ``bnviz.record`` needs to know about a torch.distributed job, learned without talking to
the other ranks (bnviz makes no collective call: recording can never hang a job).

- ``rank_info()``: this process's rank, the world size, backend and a job id, from the default
  process group when it is initialised, else from the variables torchrun sets (RANK, WORLD_SIZE),
  so a ``record`` call placed before ``init_process_group`` still gets its own file.
- ``unwrap(model)``: the module inside DistributedDataParallel / DataParallel, so layer paths
  are the same whether the model was instrumented before or after wrapping.
- ``LayerWatch``: notices instrumented layers replaced in the model after ``record`` started
  (``SyncBatchNorm.convert_sync_batchnorm`` builds new modules, dropping bnviz's).
- ``synced_statistics(output)``: the global mean / inverse std a synced SyncBatchNorm forward
  normalised with (GPU only: torch has no CPU kernels for it).
"""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["LayerWatch", "job_id", "rank_info", "synced_statistics", "unwrap"]


def job_id() -> str:
    """An id every rank of one job computes alike from its environment, so the reader can tell
    a job's files from an earlier job's left beside them. BNVIZ_JOB_ID overrides it."""
    env = os.environ
    if env.get("BNVIZ_JOB_ID"):
        return env["BNVIZ_JOB_ID"]
    parts = []
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        parts.append(f"torchelastic:{run_id}")
    if env.get("SLURM_JOB_ID"):
        parts.append(f"slurm:{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '')}")
    if env.get("MASTER_ADDR") or env.get("MASTER_PORT"):
        parts.append(f"master:{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}")
    if env.get("TORCHELASTIC_RESTART_COUNT"):
        parts.append(f"restart:{env['TORCHELASTIC_RESTART_COUNT']}")
    return " ".join(parts) or "unknown"


def rank_info() -> dict | None:
    """{rank, world_size, local_rank, dist_backend, job_id} in a job of more than one process,
    else None. Local queries only: no communication."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        rank, world, backend = dist.get_rank(), dist.get_world_size(), str(dist.get_backend())
    else:
        try:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        except (KeyError, ValueError):
            return None
        backend = "not initialised"
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside 0..{world - 1}: check the RANK and WORLD_SIZE variables")
    return {
        "rank": rank,
        "world_size": world,
        "local_rank": int(os.environ.get("LOCAL_RANK", -1)),
        "dist_backend": backend,
        "job_id": job_id(),
    }


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel wrappers (same module objects)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class LayerWatch:
    """Checks, cheaply enough for every step (one dict lookup per layer), that each recorded
    layer is still the module its parent holds under its name."""

    def __init__(self, model: nn.Module, layers):
        self._slots = []
        for li in layers:
            parent_path, _, name = li.path.rpartition(".")
            if not name:
                continue  # the model itself is the layer: nothing holds it
            parent = model.get_submodule(parent_path)
            self._slots.append((parent._modules, name, li.module, li.path))

    def replaced(self) -> list[str]:
        """Paths of recorded layers that are no longer in the model."""
        return [path for modules, name, module, path in self._slots if modules.get(name) is not module]


def synced_statistics(output: torch.Tensor):
    """(mean, invstd, counts) of a synced SyncBatchNorm forward's ``output``: the global batch
    mean and inverse std it normalised with and each rank's value count, as torch's
    SyncBatchNorm function saved them for backward (no copy, no host sync). None when the
    output has no such node (no autograd, or the forward did not sync)."""
    node = output.grad_fn
    if node is None or type(node).__name__ != "SyncBatchNormBackward":
        return None
    _, _, mean, invstd, counts = node.saved_tensors
    return mean, invstd, counts
