"""What a recording tells the user: RecordingWarnings, one per kind of problem, that never stop
the training (not even where warnings are errors)."""

from __future__ import annotations

import warnings

from bnviz.store.errors import RecordingWarning

# This many training forwards of the whole model with no step in between means steps are not being
# marked (no optimizer=, no rec.step()): everything would be one row. Warn once.
NO_STEP_FORWARDS = 100


def warn(message: str) -> None:
    """A RecordingWarning that cannot stop the training, even where warnings are errors."""
    try:
        warnings.warn(message, RecordingWarning, stacklevel=4)
    except Warning:
        pass


class Once:
    """Warn once per recording for each kind of problem."""

    def __init__(self):
        self.told: set[str] = set()

    def tell(self, key: str, message: str) -> None:
        if key not in self.told:
            self.told.add(key)
            warn(message)


def no_step(since: str) -> str:
    return (
        f"bnviz: {NO_STEP_FORWARDS} training forwards of the model since {since} "
        "and no step marked: they all belong to one step, of which bnviz records "
        "the first forward. Pass optimizer= to bnviz.record, or call rec.step() "
        "after each optimizer step."
    )


def layer_findings(instrumentation) -> list[str]:
    """What the first observed forward showed about layers bnviz cannot record as asked."""
    found = []
    unchecked = instrumentation.unchecked
    if unchecked:
        found.append(
            "bnviz: these BatchNorm subclasses did not normalise their input with F.batch_norm in "
            f"their forward: {', '.join(unchecked)}. bnviz records their input and their own "
            "weight, bias and running statistics as a BN's; check that this is what they compute."
        )
    reused = [f"{li.path} ({li.calls_per_forward} calls)" for li in instrumentation.layers if li.calls_per_forward > 1]
    if reused:
        found.append(
            "bnviz: these BN layers run more than once in one forward of the model: "
            f"{', '.join(reused)}. bnviz records the first call of each step (the layer table "
            "says how many calls there are in calls_per_forward); to see every call, give each "
            "use its own BN module."
        )
    return found


def layers_replaced(replaced: list[str], step: int) -> tuple[str, str]:
    """(what happened, what to do) when layers were swapped out of the model while recording."""
    shown = ", ".join(replaced[:3]) + (f" and {len(replaced) - 3} more" if len(replaced) > 3 else "")
    why = (
        f"bnviz: layers {shown} were replaced in the model after bnviz.record() started "
        "(torch.nn.SyncBatchNorm.convert_sync_batchnorm builds new modules without bnviz's "
        f"instrumentation), so their statistics of step {step} were not recorded"
    )
    return why, "To record every step, convert the model first, then call bnviz.record()."
