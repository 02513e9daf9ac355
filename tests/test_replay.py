"""bench replay / bench compare: replaying optimisers against recorded tables (benchmark.tables.replay, benchmark.tables.compare)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_cli import run_cli
from test_tabular import space_config, trial, write_run, write_study

from benchmark.tables import compare, tabular
from benchmark.errors import BenchError
from benchmark.tables.replay import Blackbox, Rungs, Surrogate, blackboxes, list_proposer, optuna_proposer, replay
from benchmark.search_space import parse_space

# one float on a log scale and one categorical: the answer is known everywhere
SPACE = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                     "width": {"type": "categorical", "choices": [8, 16]},
                     "epochs": {"type": "fixed", "value": 9}}, "test-space")


def quality(lr: float, width: int) -> float:
    """The final AUC of a config: best at lr = 1e-2.5, width 16 a little better."""
    return 0.9 - 0.04 * (math.log10(lr) + 2.5) ** 2 + (0.01 if width == 16 else 0.0)


def known_box(n: int = 60, seed: int = 0) -> Blackbox:
    rng = np.random.default_rng(seed)
    configs = tuple({"lr": float(10 ** rng.uniform(-4, -1)), "width": int(rng.choice([8, 16]))} for _ in range(n))
    e = np.arange(1, 10)
    curves = np.array([0.5 + (quality(**c) - 0.5) * (1 - np.exp(-e / 2)) / (1 - np.exp(-9 / 2)) for c in configs])
    times = np.array([np.full(9, 1.0 + (c["width"] == 16)) for c in configs])
    return Blackbox("known/box", "ee_gamma", "resnet15", 1000, SPACE, configs, curves, times)


def hand_box(curves: list[list[float]], times: list[list[float]] | None = None) -> Blackbox:
    configs = tuple({"lr": 10.0 ** (-4 + i * 0.5), "width": 8} for i in range(len(curves)))
    times = times or [[1.0] * len(c) for c in curves]
    return Blackbox("hand/box", "ee_gamma", "resnet15", 100, SPACE, configs, np.array(curves, float), np.array(times, float))


# --- the surrogate ---

def test_the_surrogate_returns_a_recorded_config_exactly_and_predicts_a_known_function_held_out():
    box = known_box()
    s = Surrogate.fit(box)
    curve, wall = s.predict(box.configs[7])
    np.testing.assert_array_equal(curve, box.curves[7])
    np.testing.assert_array_equal(wall, box.times[7])
    h = s.holdout()
    assert h["mae"] < 0.01 and h["relative"] < 0.25 and h["spearman"] > 0.9, h
    # an unrecorded config close to the optimum is predicted near its true value
    curve, _ = s.predict({"lr": 10 ** -2.5, "width": 16})
    assert abs(curve.max() - quality(10 ** -2.5, 16)) < 0.01
    # and a poor one as poor
    assert Surrogate(box, 3).predict({"lr": 1e-4, "width": 8})[0].max() < quality(10 ** -2.5, 8) - 0.05


def test_the_surrogate_with_no_information_has_no_rank_and_k_is_chosen_by_cross_validation():
    box = known_box()
    noise = np.random.default_rng(1).permutation(len(box.curves))
    shuffled = Blackbox("noise/box", "ee_gamma", "resnet15", 1000, SPACE, box.configs, box.curves[noise], box.times)
    assert abs(Surrogate(shuffled, 3).holdout()["spearman"]) < 0.4  # configs carry no information here
    errors = {k: Surrogate(box, k).holdout()["mae"] for k in (1, 2, 3, 5, 8, 13)}
    assert Surrogate.fit(box).k == min(errors, key=lambda k: (errors[k], k))  # the least cross-validated error


# --- ASHA's decisions, by hand ---

def test_rungs_decide_as_ray_tunes_asha():
    rungs = Rungs(9)  # grace 1, rf 3: rungs at epochs 1 and 3
    assert sorted(rungs.recorded) == [1, 3]
    assert not rungs.stops(1, 0.6)            # the first result at a rung goes on
    assert rungs.stops(1, 0.5)                # below the 2/3 quantile of [0.6]
    assert not rungs.stops(1, 0.7)            # 2/3 quantile of [0.6, 0.5] = 0.5667
    assert rungs.stops(1, 0.6)                # of [0.6, 0.5, 0.7] = 0.6333
    assert not rungs.stops(2, 0.0)            # not a rung


def test_asha_stops_which_trials_at_which_rung_on_a_hand_made_table():
    curves = [[0.60, 0.65, 0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.82],   # A: the first at every rung: runs to 9
              [0.50, 0.55, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60],   # B: below A at rung 1: stops after 1
              [0.65, 0.66, 0.67, 0.90, 0.90, 0.90, 0.90, 0.90, 0.90],   # C: above at rung 1, below A's 0.70 at 3
              [0.70, 0.80, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91]]   # D: above at both rungs: runs to 9
    box = hand_box(curves)
    trace = replay(box, "random", "asha", 0, trials=4, workers=1, surrogate=Surrogate(box),
                   proposer=list_proposer(box.configs))
    assert trace.trial_epochs.tolist() == [9, 1, 3, 9]
    assert trace.trial_value.tolist() == [0.82, 0.50, 0.67, 0.91]
    assert trace.time.tolist() == list(range(1, 23))  # one epoch a second, one worker: 22 epochs
    # no early stopping: every trial runs to the end
    full = replay(box, "random", "none", 0, trials=4, workers=1, surrogate=Surrogate(box),
                  proposer=list_proposer(box.configs))
    assert full.trial_epochs.tolist() == [9] * 4 and full.trial_value.tolist() == [0.82, 0.60, 0.90, 0.91]


def test_workers_run_side_by_side_in_simulated_time():
    box = hand_box([[0.6, 0.7], [0.5, 0.9], [0.8, 0.8]], times=[[1, 1], [3, 3], [1, 1]])
    trace = replay(box, "random", "none", 0, trials=3, workers=2, surrogate=Surrogate(box),
                   proposer=list_proposer(box.configs))
    # A ends at t=2, C starts then and ends at t=4; B ends at t=6
    assert trace.trial_end.tolist() == [2.0, 4.0, 6.0]
    assert trace.trial_value.tolist() == [0.7, 0.8, 0.9]
    assert trace.best_at(np.array([0.5, 1.0, 2.5, 6.0])).tolist()[1:] == [0.6, 0.7, 0.9]
    assert math.isnan(trace.best_at(np.array([0.5]))[0])
    assert trace.best_after_trials(4)[:3].tolist() == [0.7, 0.8, 0.9] and math.isnan(trace.best_after_trials(4)[3])


# --- determinism ---

@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "qmc"])
def test_a_replay_is_determined_by_its_seed(sampler):
    box = known_box()
    s = Surrogate.fit(box)
    a, b = (replay(box, sampler, "asha", 3, trials=30, surrogate=s) for _ in range(2))
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.trial_epochs, b.trial_epochs)
    c = replay(box, sampler, "asha", 4, trials=30, surrogate=s)
    assert not np.array_equal(a.value, c.value)


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "qmc"])
def test_another_seed_asks_other_configs_beyond_the_first_trial(sampler):
    """Each seed its own sequence (an unscrambled QMC sequence is the same whatever the seed: only its first,
    independently drawn, trial would differ)."""
    asked = []
    for seed in (3, 4):
        ask, tell = optuna_proposer(known_box().space, sampler, seed)
        lrs = []
        for _ in range(6):
            handle, config = ask()
            lrs.append(config["lr"])
            tell(handle, 0.5)
        asked.append(lrs[1:])
    assert all(a != b for a, b in zip(*asked))


# --- the arithmetic ---

def test_regret_iqm_bootstrap_ranks_and_holm_by_hand():
    np.testing.assert_allclose(compare.normalised_regret(np.array([0.9, 0.8, np.nan]), 0.5, 0.9), [0.0, 0.25, 1.0])
    assert compare.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    mid, low, high = compare.bootstrap_iqm(np.full((10, 2), 0.3))
    np.testing.assert_allclose([mid, low, high], [[0.3, 0.3]] * 3)
    regret = np.array([[0.1, 0.5], [0.2, 0.5], [0.1, 0.0]])  # [method, point]
    np.testing.assert_allclose(compare.ranks(regret), [[1.5, 2.5], [3.0, 2.5], [1.5, 1.0]])
    np.testing.assert_allclose(compare.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    final = {"good": np.linspace(0.0, 0.1, 20), "bad": np.linspace(0.5, 0.6, 20), "same": np.linspace(0.0, 0.1, 20)}
    sig = compare.pairwise(final)
    assert {(a, b) for a, b, _ in sig} == {("good", "bad"), ("same", "bad")}
    assert all(p < 0.05 for *_, p in sig)


def test_a_cached_grid_is_the_same_grid(tmp_path):
    box = known_box()
    method_list = compare.methods(["random", "tpe"], ["asha"])
    first = compare.run_grid([box], method_list, seeds=2, trials=15, cache=tmp_path / "cache", jobs=2)
    again = compare.run_grid([box], method_list, seeds=2, trials=15, cache=tmp_path / "cache")
    assert first.cached == (0, 4) and again.cached == (4, 4) and len(list((tmp_path / "cache").glob("*/*.npz"))) == 4
    for key, traces in first.traces.items():
        for a, b in zip(traces, again.traces[key]):
            np.testing.assert_array_equal(a.value, b.value)
            np.testing.assert_array_equal(a.trial_epochs, b.trial_epochs)
    assert again.seconds == pytest.approx(first.seconds)  # the time each replay took when it ran
    other = compare.run_grid([box], method_list, seeds=2, trials=16, cache=tmp_path / "cache")
    assert other.cached == (0, 4)  # another budget is another replay


def test_average_ranks_and_time_to_reach_on_a_grid():
    box = hand_box([[0.6, 0.7], [0.5, 0.9], [0.8, 0.8]])
    grid = compare.run_grid([box], compare.methods(["random", "tpe"], ["none", "asha"]), seeds=3, trials=5,
                            surrogates=[Surrogate(box)])
    r = compare.mean_ranks(grid)
    assert r.shape == (4, 5) and np.allclose(r.sum(axis=0), 1 + 2 + 3 + 4)  # four methods ranked at each trial count
    t = grid.traces[0, compare.Method("random", "none")][0]
    reached = compare.time_to_reach(t, float(t.value.max()))
    assert reached is not None and t.time[reached[1] - 1] == reached[0]
    assert compare.time_to_reach(t, 2.0) is None


def test_the_stability_check_counts_significant_pairs_kept_and_reversed():
    box = known_box()
    method_list = compare.methods(["random", "tpe"], ["none"])
    grid = compare.run_grid([box], method_list, seeds=12, trials=12, surrogates=[Surrogate.fit(box)])
    cut = compare.run_grid([box], method_list, seeds=12, trials=1, surrogates=[Surrogate.fit(box)])
    # tpe's searches ended after one trial: the worst regret after 12, significantly worse than random's
    grid = dataclasses.replace(grid, traces={**grid.traces, (0, method_list[1]): cut.traces[0, method_list[1]]})
    assert [(a, b) for a, b, _ in compare.pairwise(compare.final_regrets(grid)[0][0])] == [("random", "tpe")]
    assert compare.agreement(compare.significant(grid), compare.significant(grid)) == (1, 1, 0)
    swapped = dataclasses.replace(grid, traces={(0, m): grid.traces[0, o] for m, o in zip(method_list, method_list[::-1])})
    assert compare.agreement(compare.significant(grid), compare.significant(swapped)) == (1, 0, 1)
    assert compare.significant(grid) == {0: {("random", "tpe")}, None: {("random", "tpe")}}  # one blackbox: pooled alike
    page = lambda other: compare.markdown(grid, command="c", wall_s=1.0, holdouts=[Surrogate(box).holdout()],
                                          figure_paths=[], confirmed=compare.significant(other))
    assert page(grid).count("| tpe (both surrogates) |") == 1  # pooled: random beats tpe under both
    assert page(grid).count(") (both surrogates)") == 1  # the blackbox's line: "random < tpe (p ...) (both surrogates)"
    assert "(both surrogates)" not in page(swapped)


# --- from an exported table, through the CLI ---

@pytest.fixture
def table(tmp_path):
    return recorded_table(tmp_path)


def recorded_table(tmp_path):
    """An exported table of a random search over resnet15's lr (a known function) and logreg's C."""
    run = tmp_path / "runs" / "rec"
    write_run(run, ("resnet15", "logreg"))
    lrs = np.geomspace(1e-4, 1e-2, 24)  # resnet15.yaml's range
    write_study(run, "resnet15", [trial(f"t{i}", space_config("resnet15", lr=float(lr)),
                                        [0.6, 0.6 + 0.1 * (1 - abs(math.log10(lr) + 3)), 0.62 + 0.1 * (1 - abs(math.log10(lr) + 3))])
                                  for i, lr in enumerate(lrs)]
                + [trial("short", space_config("resnet15", lr=2e-3), [0.6, 0.65]),   # ended by its patience
                   trial("cut", space_config("resnet15", lr=3e-3), [0.55], status="pruned"),
                   trial("bad", space_config("resnet15", lr=4e-3), [], status="failed", error="DivergedError: nan")])
    write_study(run, "logreg", [trial(f"l{i}", {"C": float(c), "pool": 0}, [0.9 - 0.01 * abs(math.log10(c))], neural=False)
                                for i, c in enumerate(np.geomspace(1e-4, 1e2, 30))])
    out = tmp_path / "rec.parquet"
    tabular.export([run], out)
    return out


def test_blackboxes_from_an_exported_table(table):
    boxes = {b.study: b for b in blackboxes(table)}
    assert set(boxes) == {"resnet15", "logreg"}
    res = boxes["resnet15"]
    assert res.curves.shape == (25, 3) and boxes["logreg"].curves.shape == (30, 1) and res.failed == 1
    short = next(i for i, c in enumerate(res.configs) if c["lr"] == 2e-3)  # padded: its last value, at no cost
    assert res.curves[short].tolist() == [0.6, 0.65, 0.65] and res.times[short].tolist() == [10.0, 11.0, 0.0]
    assert boxes["resnet15"].space.params_by_name()["epochs"].value == 3
    assert res.times[short + 1].tolist() == [10.0, 11.0, 12.0]


def test_cli_replay_and_compare(table, tmp_path, capsys):
    code, out, err = run_cli(capsys, "replay", str(table), "--study", "resnet15", "--seeds", "2", "--trials", "10")
    assert code == 0 and "rec/resnet15: 25 configs x 3 epoch(s)" in out and "held-out MAE" in out
    page = tmp_path / "board" / "optimizers.md"
    code, out, err = run_cli(capsys, "compare", str(table), "--seeds", "3", "--trials", "10", "--jobs", "2",
                             "--samplers", "random", "tpe", "--out", str(page), "--cache", str(tmp_path / "cache"))
    assert code == 0, err
    text = page.read_text()
    for part in ("rec/resnet15", "rec/logreg", "tpe + asha", "Stability:", "Search efficiency", "Kendall"):
        assert part in text, part
    for fig in ("optimizers_regret_trials.png", "optimizers_regret_time.png", "optimizers_rank.png"):
        assert (page.parent / fig).stat().st_size > 1000
    assert list((tmp_path / "cache").glob("*/*.npz"))  # one folder per sampler
    # the stability replay of some samplers only: said on the page, its ranks among those alone
    code, out, err = run_cli(capsys, "compare", str(table), "--seeds", "3", "--trials", "10", "--jobs", "1",
                             "--samplers", "random", "tpe", "--stability-samplers", "random", "--out", str(page),
                             "--no-cache")
    assert code == 0, err
    stability = next(line for line in page.read_text().splitlines() if line.startswith("Stability:"))
    assert "of every method but tpe" in stability
    assert "significant differences among them per blackbox" in stability  # the counts are of the others
    assert "Order here: random + asha, random;" in stability or "Order here: random, random + asha;" in stability


def test_live_searches_are_read_in_the_order_their_trials_ended(table, tmp_path):
    box = next(b for b in blackboxes(table) if b.study == "resnet15")
    lives, orders = [], []
    for k in range(2):
        run = tmp_path / "runs" / f"live{k}"
        write_run(run, ("resnet15",), sampler="random", scheduler="none")
        order = np.random.default_rng(k).permutation(len(box.configs))[:10]
        trials = []
        for n, i in enumerate(order):  # trial names do not sort in the order they ended
            t = trial(f"z{9 - n}", space_config("resnet15", **box.configs[i]), list(box.curves[i]))
            trials.append(dataclasses.replace(t, curve=tuple(dataclasses.replace(e, reported_at=2e9 + 100 * n + e.epoch)
                                                             for e in t.curve)))
        write_study(run, "resnet15", trials)
        lives.append(run)
        orders.append(order)
    ((_, path),) = tabular.export(lives, tmp_path / "live.parquet")
    for source in (lives, [path]):  # the run directories, or the table exported from them: the same searches
        (search,) = compare.live_searches(source, [box])
        assert search.method == compare.Method("random", "none") and search.runs == ("live0", "live1")
        for curve, order in zip(search.curves, orders):
            np.testing.assert_allclose(curve, np.maximum.accumulate(box.finals[order]))
    with pytest.raises(BenchError, match="training rows"):  # trained on another training size than the table
        compare.live_searches([path], [dataclasses.replace(box, n_train=box.n_train + 1)])


def test_the_live_check_places_curves_against_the_replays_range():
    box = known_box()
    method = compare.Method("random", "none")
    grid = compare.run_grid([box], [method], seeds=10, trials=20, surrogates=[Surrogate.fit(box)])
    own = tuple(t.best_after_trials(20) for t in grid.traces[0, method][:2])  # replays are inside by definition
    check = compare.live_check(grid, compare.Live(0, method, ("a", "b"), own))
    assert check["trials"] == 20 and check["inside_range"] == 1.0 and check["live_final"] == [c[-1] for c in own]
    lo, mid, hi = check["replay_final"]
    assert lo <= mid <= hi
    better = compare.Live(0, method, ("a",), (own[0] + 0.5,))
    assert compare.live_check(grid, better)["inside_range"] == 0.0
    short = compare.Live(0, method, ("a",), (own[0][:7],))  # a live search of fewer trials: compared as far as it goes
    assert compare.live_check(grid, short)["trials"] == 7


def test_cli_replay_errors_are_one_line(table, capsys):
    code, out, err = run_cli(capsys, "replay", str(table), "--study", "vit")
    assert code != 0 and "no searched study vit" in err and len(err.strip().splitlines()) == 1
