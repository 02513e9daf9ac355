"""Reference recipes: the seed solutions' untuned training recipes, run by the suite as board rows.

Each task's public seed solutions trained one model with one hand-set recipe. The suite runs that
recipe on the same data and splits as the tuned searches (not searched: trained once with the run's
seed, the best epoch on validation kept, the test split scored once), and the board marks the row *recipe*: the
distance between a tuned row and its family's recipe row is what tuning buys.

What each recipe states and what the suite adds where the seed does not say (all in ``config``):

* ``e2e-resnet15`` (the electron / photon solution): ResNet-15, [2, 2, 2] basic blocks, Adam at a
  constant lr 1e-3, cross-entropy, 20 epochs. It states no batch size or width: batch 32 (the
  per-sample loaders of the seed), width 16, no dropout.
* ``ae-vae-lr1e-3`` (one jet auto-encoder solution): a VAE, Adam lr 1e-3, latent dimension 1024,
  on the raw (not log-compressed) pixels; epochs not stated: 20, as the other solution.
* ``ae-vae-lr3e-4`` (the other one): a VAE, Adam lr 3e-4 for 20 epochs; latent dimension not stated:
  the suite's default (16).
* ``hcal-vit-tiny224`` (the HCAL solution, hcal_dqm only): timm's ``vit_tiny_patch16_224`` on images
  resized to 224x224 and copied to 3 channels, Adam lr 3e-4, batch 8, from scratch (no network access for
  pretrained weights); "a few epochs" stated: 3. On a 2-core CPU one epoch of 3,000 rows takes about
  7 minutes (0.18 s per training image per core, measured), which is why it is 3.
* ``topo-dnn-emb1`` (the topo-cluster baseline, atlas_topo only): dense layers 512-512-256 with ReLU on
  the flattened EMB1 layer (the image's channel 0: its 32x16 = 512 pixels after resampling the native
  128x4 cells), Adam lr 5e-5, cross-entropy, no dropout; batch and epochs not stated: 32 (Keras's
  default) and 20.

On quark_gluon's 3x125x125 jets the recipes see the image pooled 2x2 (62x62, ``pool: 2``), a lever
the tuned searches have too: at full resolution ResNet-15 trains about 19 jets/s and the latent-1024 VAE
about 25/s on this 2-core CPU (measured), so e2e-resnet15 alone would take most of an hour of the task's
75-minute board; at 62x62 it trains about 8x faster. The board says so beside the row.

Adam is AdamW with weight decay 0; "constant" is ``lr_schedule: constant`` with no warm-up; patience
equals the epochs, so every recipe trains its stated epochs unless the protocol caps them
(``--max-epochs``: the board says where).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from benchmark.errors import BenchError


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    config: Mapping[str, Any]
    source: str                  # the seed solution it reproduces
    tasks: tuple[str, ...] = ()  # the tasks it applies to (empty: every task)
    #: task -> what the suite changes there (e.g. quark_gluon's pooling), over ``config``
    on_task: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def applies_to(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def config_for(self, task: str) -> dict[str, Any]:
        """The config the recipe trains with on ``task``."""
        return {**self.config, **self.on_task.get(task, {})}


_ADAM_CONSTANT = {"weight_decay": 0.0, "lr_schedule": "constant", "warmup_epochs": 0.0, "grad_clip": 0.0}
_JETS_POOLED = {"quark_gluon": {"pool": 2}}

RECIPES: Mapping[str, Recipe] = {r.name: r for r in (
    Recipe("e2e-resnet15", "resnet15",
           {**_ADAM_CONSTANT, "lr": 1e-3, "epochs": 20, "patience": 20, "batch_size": 32, "width": 16, "blocks": 2,
            "dropout": 0.0, "label_smoothing": 0.0},
           "ML4Sci end-to-end electron / photon solution (ResNet-15, Adam 1e-3, 20 epochs)", on_task=_JETS_POOLED),
    Recipe("ae-vae-lr1e-3", "vae",
           {**_ADAM_CONSTANT, "lr": 1e-3, "latent_dim": 1024, "epochs": 20, "patience": 20, "batch_size": 32,
            "transform": "none"},
           "ML4Sci jet auto-encoder solution (VAE, Adam 1e-3, latent 1024)", on_task=_JETS_POOLED),
    Recipe("ae-vae-lr3e-4", "vae",
           {**_ADAM_CONSTANT, "lr": 3e-4, "epochs": 20, "patience": 20, "batch_size": 32, "transform": "none"},
           "ML4Sci jet auto-encoder solution (VAE, Adam 3e-4, 20 epochs)", on_task=_JETS_POOLED),
    Recipe("hcal-vit-tiny224", "timm",
           {**_ADAM_CONSTANT, "model_name": "vit_tiny_patch16_224", "resize": 224, "lr": 3e-4, "epochs": 3,
            "patience": 3, "batch_size": 8, "label_smoothing": 0.0},
           "ML4Sci HCAL DQM solution (vit_tiny_patch16_224 at 224x224, 3 channels, Adam 3e-4, batch 8)",
           tasks=("hcal_dqm",)),
    Recipe("topo-dnn-emb1", "mlp",
           {**_ADAM_CONSTANT, "hidden": "512,512,256", "channel": 0, "lr": 5e-5, "epochs": 20, "patience": 20,
            "batch_size": 32, "dropout": 0.0, "label_smoothing": 0.0},
           "ATLAS topo-cluster baseline (dense 512-512-256 on EMB1, Adam 5e-5)", tasks=("atlas_topo",)),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise BenchError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def study_name(model: str, recipe: Recipe | None) -> str:
    """The name of a search's study directory and progress line: the model's, ``<model>@<recipe>`` for a
    reference recipe."""
    return model if recipe is None else f"{recipe.model}@{recipe.name}"
