"""What every framework callback shares: the ``ranks=`` choice and the keyword checks."""

from __future__ import annotations

from bnviz.store.ranks import checked_recorded_ranks


def check_options(framework: str, ranks: str, record_kwargs: dict) -> None:
    """Fail at construction (before training starts) on options a callback cannot honour."""
    checked_recorded_ranks(ranks)
    taken = sorted({"optimizer", "start_step"} & set(record_kwargs))  # the step counter is the framework's
    if taken:
        raise TypeError(
            f"the {framework} callback counts steps itself from the framework's step counter: "
            f"leave out {', '.join(taken)}"
        )


def record_kwargs(record_kwargs: dict, steps_done: int, ranks: str) -> dict:
    """``bnviz.record`` keywords; a resumed recording goes on from the framework's restored step."""
    kwargs = dict(record_kwargs, ranks=ranks)
    if kwargs.get("resume"):
        kwargs["start_step"] = int(steps_done)
    return kwargs


def loss_of(outputs):
    """The loss a training step returned (a tensor or a mapping with "loss"), or None."""
    if isinstance(outputs, dict) or hasattr(outputs, "keys"):
        outputs = outputs.get("loss")
    return outputs if hasattr(outputs, "numel") and outputs.numel() == 1 else None
