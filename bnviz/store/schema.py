"""The names and shapes in a bnviz recording: the one contract between the two sides.

The training side (``bnviz.hooks``) lays out its device buffers from these tuples, the writer
creates datasets from them and the reader indexes by them. Nothing here imports torch or Qt.
``docs/format.md`` documents every name; a change to this file is a change of the format.
"""

from __future__ import annotations

FORMAT_NAME = "bnviz"
# Bump the minor version for additions a v1 reader can ignore, the major for anything else.
# Fields are only ever appended: a file of an older minor version has fewer (the reader gives NaN).
FORMAT_VERSION = (1, 3)
FORMAT_VERSION_TEXT = "%d.%d" % FORMAT_VERSION  # as the root attribute format_version holds it

PHASE_TRAIN = 0
PHASE_EVAL = 1
PHASE_NAMES = {PHASE_TRAIN: "train", PHASE_EVAL: "eval"}

# Per layer, per recorded row (the "summary" tier, written on every recorded step).
# Moments are over the channels of the layer; per-channel values are in CHANNEL_FIELDS.
SUMMARY_FIELDS = (
    "n",  # values per channel in the batch (N x spatial size)
    "pre_mean",  # mean over channels of the per-channel batch mean of the BN input
    "pre_mean_sd",  # standard deviation over channels of the same
    "pre_mean_min",
    "pre_mean_max",
    "pre_var",  # mean over channels of the per-channel biased batch variance of the input
    "pre_var_min",
    "pre_var_max",
    "post_mean",  # the same for the BN output y
    "post_mean_sd",
    "post_mean_min",
    "post_mean_max",
    "post_var",
    "post_var_min",
    "post_var_max",
    "gamma_mean",  # NaN for affine=False and probes
    "gamma_abs_min",
    "gamma_abs_max",
    "beta_mean",
    "beta_abs_max",
    "run_mean_gap",  # mean over channels of |batch mean - running mean| / sqrt(running var + eps)
    "run_var_logratio",  # mean over channels of |log((batch var + eps) / (running var + eps))|
    "sat_y",  # fraction of sampled y in the following activation's saturated/dead zone
    "sat_xhat",  # the same for x-hat alone (gamma=1, beta=0): sat_y - sat_xhat is gamma/beta's doing
    "zone_channels",  # fraction of channels with >= 99% of their sampled y in the zone
    "nonfinite_channels",  # channels whose batch mean or variance is NaN/Inf
    "grad_gamma_norm",  # L2 norm of gamma's gradient at the step's end (NaN where none)
    "grad_beta_norm",
    # 1.1
    "used_mean_gap",  # mean over channels of |pre_mean - used_mean| / sqrt(used_var + eps)
)

# Per layer, per channel, on the channel schedule.
CHANNEL_FIELDS = (
    "pre_mean",
    "pre_var",
    "post_mean",
    "post_var",
    "gamma",
    "beta",
    "running_mean",
    "running_var",
    "sat_y",
    "sat_xhat",
    "grad_gamma",
    "grad_beta",
    # 1.1: the mean and biased variance the layer normalised with (NaN for probes)
    "used_mean",
    "used_var",
)

# Pooled quantiles of a layer's sampled values: the BN paper's Figure 1 uses 15/50/85,
# TensorBoard's distribution view the +-1 sigma and +-2 sigma bands of a normal.
QUANTILES = (0.0, 0.02275, 0.15, 0.15866, 0.5, 0.84134, 0.85, 0.97725, 1.0)
QUANTILE_NAMES = ("min", "m2s", "q15", "m1s", "q50", "p1s", "q85", "p2s", "max")

# The three tensors a layer's histograms and quantiles describe.
TENSORS = ("pre", "xhat", "post")

HIST_BINS = 64
# After the HIST_BINS counts: values below the range, above it, and non-finite values.
HIST_EXTRA = ("under", "over", "nonfinite")
# x-hat is histogrammed on this fixed range, so its bins line up across steps and layers.
XHAT_RANGE = (-6.0, 6.0)

# Slots for user scalars (loss, accuracy, lr); names are written into a fixed-size table
# because an HDF5 file in SWMR mode cannot grow new datasets or attributes.
MAX_SCALARS = 32
SCALAR_NAME_BYTES = 64

# Tiers: each has its own row axis and step index; a reader trusts only committed rows.
TIERS = ("summary", "channels", "hist", "scalars")
