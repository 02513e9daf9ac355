"""The board protocol: one named preset per task, the settings every published board row ran under.

``bench run --protocol board --task ee_gamma --leaderboard-dir leaderboard`` runs the preset of one task:
every model gets the same trials, training rows and epoch cap (each search's first trial is the
model's default config), then the reference recipes (:mod:`benchmark.recipes`) run on the same data
with one seed, and each search's best configuration is retrained with ``repeats`` seeds. A preset fixes the run's settings: the options it sets may not be given with it.
One task's preset is one resumable command (``--name``, then ``--resume`` after an interruption), meant to
finish on a 2-core CPU within its ``budget_min`` (a target, checked against the runs' own times, which
``leaderboard.md`` prints as the CPU-hours of each row beside the preset).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from benchmark.errors import BenchError


@dataclasses.dataclass(frozen=True)
class Preset:
    task: str
    n_train: int
    trials: int
    max_epochs: int
    repeats: int = 3
    sampler: str = "tpe"
    scheduler: str = "asha"
    recipes: tuple[str, ...] = ()
    #: model -> search-space file (relative to ``benchmark/spaces/``) replacing the model's own
    spaces: Mapping[str, str] = dataclasses.field(default_factory=dict)
    budget_min: int = 75  # the wall time it should take on a 2-core CPU: a target, not a measurement


#: Each where it applies. Not hcal-vit-tiny224: at 224x224 its 3 epochs on 3,000 rows and the test take
#: about 25 minutes of this 2-core CPU (from 0.18 s per training image and 0.06 s per scored image on one
#: core, measured), a third of the task's budget; ``--recipe hcal-vit-tiny224`` runs it.
_RECIPES = ("e2e-resnet15", "ae-vae-lr1e-3", "ae-vae-lr3e-4", "topo-dnn-emb1")

PROTOCOLS: Mapping[str, Mapping[str, Preset]] = {
    "board": {p.task: p for p in (
        Preset("ee_gamma", n_train=12_000, trials=6, max_epochs=8, recipes=_RECIPES),
        Preset("quark_gluon", n_train=5_000, trials=6, max_epochs=8, recipes=_RECIPES,
               spaces={m: f"quark_gluon/{m}.yaml" for m in ("resnet15", "vit", "vae", "beta_vae")}),
        Preset("hcal_dqm", n_train=3_000, trials=5, max_epochs=8, recipes=_RECIPES),
        Preset("atlas_topo", n_train=12_000, trials=6, max_epochs=8, recipes=_RECIPES),
    )},
}


def preset(protocol: str, task: str) -> Preset:
    if protocol not in PROTOCOLS:
        raise BenchError(f"--protocol {protocol!r}: known protocols are {', '.join(PROTOCOLS)}")
    if task not in PROTOCOLS[protocol]:
        raise BenchError(f"--protocol {protocol}: no preset for task {task!r}")
    return PROTOCOLS[protocol][task]


def describe(protocol: str) -> str:
    """The protocol as Markdown: one line per task, and the command that builds its rows."""
    lines = [f"**Protocol `{protocol}`** (every model of a task: the same training rows, trials and epoch cap; "
             "the best configuration retrained with each seed):\n",
             "| task | training rows | trials per model | max epochs | sampler / scheduler | seeds | reference "
             "recipes | target wall time | command |", "|---|---|---|---|---|---|---|---|---|"]
    from benchmark.recipes import get_recipe

    for p in PROTOCOLS[protocol].values():
        recipes = [name for name in p.recipes if get_recipe(name).applies_to(p.task)]  # what bench run runs
        command = f"`bench run --protocol {protocol} --task {p.task} --name {protocol}-{p.task} --leaderboard-dir leaderboard`"
        lines.append(f"| {p.task} | {p.n_train:,} | {p.trials} | {p.max_epochs} | {p.sampler} / {p.scheduler} | "
                     f"{p.repeats} | {', '.join(recipes) or '-'} | {p.budget_min} min on 2 CPU cores | {command} |")
    return "\n".join(lines) + "\n"
