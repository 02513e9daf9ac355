"""The forest surrogate, the report card, seed repeats and seed noise (benchmark.tables.surrogates), on a
blackbox whose answer is known everywhere (test_replay.known_box) and on an exported table with repeats."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_replay import known_box, quality
from test_tabular import space_config, trial, write_run, write_study

from benchmark.tables import surrogates, tabular
from benchmark.tables.replay import Surrogate, blackboxes, replay


def noisy_box(n: int = 60, sd: float = 0.01, seed: int = 0):
    """known_box with 2 more seeds of its first 20 configs: each seed's curve off by its own constant."""
    box = known_box(n, seed)
    rng = np.random.default_rng(seed + 1)
    repeats = {i: (box.curves[i] + rng.normal(0, sd, (2, 1)), box.times[i] + np.zeros((2, 1))) for i in range(20)}
    return dataclasses.replace(box, repeats=repeats)


def test_the_forest_answers_recorded_configs_exactly_and_predicts_the_known_function_held_out():
    box = known_box()
    forest = surrogates.ForestSurrogate(box)
    curve, wall = forest.predict(box.configs[3])
    np.testing.assert_array_equal(curve, box.curves[3])
    np.testing.assert_array_equal(wall, box.times[3])
    curve, wall = forest.predict({"lr": 10 ** -2.5, "width": 16})
    assert abs(curve.max() - quality(10 ** -2.5, 16)) < 0.02
    assert np.all(np.abs(wall - 2.0) < 0.1)  # width 16's epochs take 2 s
    assert forest.key == surrogates.ForestSurrogate(box).key != surrogates.ForestSurrogate(known_box(seed=1)).key


def test_the_report_card_scores_both_surrogates_held_out_and_chooses_the_better():
    card = surrogates.report_card(known_box())
    for kind in ("knn", "forest"):
        final, curve = card[kind]["final"], card[kind]["curve"]
        assert final["spearman"] > 0.85 and final["kendall"] > 0.7 and final["mae"] < 0.02 and final["r2"] > 0.7
        assert curve["spearman"] > 0.9 and curve["r2"] > 0.8
    best = max(("knn", "forest"), key=lambda k: card[k]["final"]["spearman"])
    assert card["chosen"] == best and card["noise_ceiling"] is None  # no repeats
    assert isinstance(surrogates.choose(known_box(), card),
                      surrogates.ForestSurrogate if best == "forest" else Surrogate)
    # a table of pure noise: neither surrogate ranks held-out configs
    box = known_box()
    shuffled = dataclasses.replace(box, curves=box.curves[np.random.default_rng(0).permutation(len(box.curves))])
    flat = surrogates.report_card(shuffled)
    assert abs(flat["knn"]["final"]["spearman"]) < 0.35 and abs(flat["forest"]["final"]["spearman"]) < 0.35


def test_the_noise_ceiling_falls_as_the_seed_spread_grows():
    quiet, loud = noisy_box(sd=0.001).noise_ceiling(), noisy_box(sd=0.2).noise_ceiling()
    assert quiet["configs"] == 20 and quiet["spearman"] > 0.95 and quiet["seed_sd"] < 0.01
    assert loud["spearman"] < 0.6 and loud["seed_sd"] > 0.05


def test_seed_noise_draws_recorded_seeds_of_a_recorded_config_and_the_nearest_spread_elsewhere():
    box = noisy_box(sd=0.05)
    noisy = surrogates.SeedNoise(Surrogate(box, 1), np.random.default_rng(0))
    seeds, _ = box.seed_curves(5)
    drawn = {tuple(noisy.predict(box.configs[5])[0]) for _ in range(40)}
    assert drawn == {tuple(c) for c in seeds}  # exactly its three recorded seeds, each in turn
    assert len({float(noisy.predict(box.configs[40])[0].max()) for _ in range(30)}) > 1  # spread elsewhere too
    same = [surrogates.SeedNoise(Surrogate(box, 1), np.random.default_rng(7)).predict(box.configs[5])[0]
            for _ in range(2)]
    np.testing.assert_array_equal(*same)  # the caller's random state decides
    a = replay(box, "random", "none", 0, trials=20, surrogate=surrogates.SeedNoise(Surrogate(box, 1), np.random.default_rng(1)))
    b = replay(box, "random", "none", 0, trials=20, surrogate=surrogates.SeedNoise(Surrogate(box, 1), np.random.default_rng(1)))
    np.testing.assert_array_equal(a.value, b.value)


def test_an_exported_table_with_seed_repeats_is_one_blackbox_with_repeats(tmp_path):
    configs = [space_config("resnet15", lr=10 ** -(2 + i / 10)) for i in range(4)]
    base = [trial(f"t{i}", c, [0.6 + 0.05 * i, 0.62 + 0.05 * i, 0.63 + 0.05 * i]) for i, c in enumerate(configs)]
    again = [trial(f"s{i}", c, [0.61 + 0.05 * i, 0.64 + 0.05 * i, 0.6 + 0.05 * i], seed=1)
             for i, c in enumerate(configs[:2])]
    for name, trials in (("table", base), ("table-seed1", again)):
        write_run(tmp_path / name, ("resnet15",))
        write_study(tmp_path / name, "resnet15", trials)
    tabular.export([tmp_path / "table", tmp_path / "table-seed1"], tmp_path / "t.parquet")
    (box,) = blackboxes(tmp_path / "t.parquet")
    assert len(box.configs) == 4 and sorted(box.repeats) == [0, 1]
    seeds, _ = box.seed_curves(1)
    np.testing.assert_allclose(seeds, [[0.65, 0.67, 0.68], [0.66, 0.69, 0.65]])
    assert box.noise_ceiling() is None  # fewer than 3 configs with 3 seeds


@pytest.mark.parametrize("kind", ["knn", "forest"])
def test_a_held_out_config_takes_its_repeats_with_it(kind):
    box = noisy_box()
    sub = surrogates._subset(box, np.arange(10, 60))
    assert len(sub.configs) == 50 and sorted(sub.repeats) == list(range(10))  # configs 10..19, renumbered
    np.testing.assert_array_equal(sub.seed_curves(0)[0], box.seed_curves(10)[0])


def test_compare_replays_with_the_chosen_surrogates_and_with_seed_noise(tmp_path, capsys):
    from test_cli import run_cli
    from test_replay import recorded_table

    path = recorded_table(tmp_path)
    page = tmp_path / "optimizers.md"
    code, out, err = run_cli(capsys, "compare", str(path), "--seeds", "2", "--trials", "10", "--jobs", "1",
                             "--samplers", "random", "--surrogate", "chosen", "--seed-noise", "--out", str(page),
                             "--cache", str(tmp_path / "cache"))
    assert code == 0, err
    text = page.read_text()
    assert ("| forest |" in text or "| knn k=" in text) and "the other surrogate per blackbox" in text
    kept = sorted(p.name for p in (tmp_path / "cache").glob("*/*.npz"))
    code, *_ = run_cli(capsys, "compare", str(path), "--seeds", "2", "--trials", "10", "--jobs", "1",
                       "--samplers", "random", "--out", str(page), "--cache", str(tmp_path / "cache"))
    assert code == 0
    assert set(kept) < {p.name for p in (tmp_path / "cache").glob("*/*.npz")}  # knn replays are other files
