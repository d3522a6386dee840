"""Export the README's gallery from the shipped recordings: `python sample_runs/make_gallery.py`.

Each picture is `bnviz export` of one view of one layer, the second run overlaid (compare mode),
written to docs/gallery/. Headless: needs no display.
"""

from pathlib import Path

import bnviz

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "gallery"

# (picture, run, compared run, layer, view)
GALLERY = (
    ("bn_paper_drift", "bn_paper_with_bn", "bn_paper_without_bn", "7", "drift"),
    ("lenet_lr1.5_drift", "lenet_bn_lr1.5", "lenet_plain_lr1.5", "13", "drift"),
    ("gamma_learned_vs_frozen", "gamma_learned", "gamma_frozen", "7", "gamma-beta"),
    ("bn_before_vs_after_relu", "bn_before_relu", "bn_after_relu", "4", "distribution"),
    ("tanh_large_init", "tanh_large_init_bn", "tanh_large_init_plain", "4", "gamma-beta"),
    ("relu_dying_channels", "relu_dying", None, "7", "channels"),
    ("tiny_batch_train_eval", "tiny_batch_2", "tiny_batch_64", "1", "train-eval"),
)

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for picture, run, other, layer, view in GALLERY:
        compare = HERE / f"{other}.h5" if other else None
        bnviz.export(HERE / f"{run}.h5", OUT / f"{picture}.png", layer=layer, view=view, compare=compare)
        print(f"docs/gallery/{picture}.png")
