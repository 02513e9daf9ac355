from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from benchmark import metrics as m


def _random(n: int, seed: int, *, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 0.8 * y
    return y, (np.round(s, 1) if ties else s)


# --- AUC and ROC against sklearn and by hand -------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n, seed", [(10, 0), (301, 1), (5000, 2)])
def test_auc_and_roc_match_sklearn(n, seed, ties):
    y, s = _random(n, seed, ties=ties)
    assert m.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    for drop in (True, False):
        ours, theirs = m.roc_curve(y, s, drop_intermediate=drop), skm.roc_curve(y, s, drop_intermediate=drop)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_auc_by_hand():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert m.roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert m.roc_auc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert m.roc_auc([0, 1, 0, 1], [1, 1, 2, 2]) == 0.5  # each pair tied or split evenly
    assert m.roc_auc([0, 1], [3, 3]) == 0.5  # a tie counts one half
    assert m.roc_auc(np.array([0, 1, 1, 0], dtype=np.int8), np.float32([0, np.inf, 1, -np.inf])) == 1.0


def test_constant_scores_give_half_and_a_diagonal_roc():
    y = np.array([0, 1, 1, 0, 1])
    assert m.roc_auc(y, np.full(5, 7.0)) == 0.5
    fpr, tpr, thresholds = m.roc_curve(y, np.full(5, 7.0))
    np.testing.assert_array_equal(fpr, [0, 1])
    np.testing.assert_array_equal(tpr, [0, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 7.0])


@pytest.mark.parametrize("y, s, match", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
    ([0, 0], [0.1, 0.2], "only one class"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
    ([0, 2, 1], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
    ([0, 1, 1], [0.1, 0.2], "equal length"),
    ([], [], "no samples"),
])
def test_degenerate_inputs_raise(y, s, match):
    for fn in (m.roc_auc, m.roc_curve, lambda y, s: m.bootstrap_auc(y, s, seed=0),
               lambda y, s: m.background_rejection(y, s, 0.5)):
        with pytest.raises(ValueError, match=match):
            fn(y, s)


# --- background rejection --------------------------------------------------------------------------

def test_background_rejection_by_hand():
    # 4 signal, 4 background. Descending scores: S S B S B S B B  ->  ROC points (fpr, tpr):
    # (0,0) (0,.25) (0,.5) (.25,.5) (.25,.75) (.5,.75) (.5,1) (.75,1) (1,1)
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    s = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    assert m.background_rejection(y, s, 0.5) == np.inf  # tpr 0.5 reached with no background
    assert m.background_rejection(y, s, 0.75) == pytest.approx(4.0)  # smallest fpr at tpr .75: .25
    assert m.background_rejection(y, s, 0.625) == pytest.approx(4.0)  # on the vertical (.25,.5)-(.25,.75)
    assert m.background_rejection(y, s, 1.0) == pytest.approx(2.0)


def test_background_rejection_interpolates_on_sloped_segments():
    # one tied group of 2 signal + 2 background after a pure-signal start: (0,0) (0,.5) (1,1)
    y = np.array([1, 1, 1, 0, 1, 0])
    s = np.array([9, 9, 5, 5, 5, 5], dtype=float)
    # ROC: (0, 0) -> (0, .5) -> (1, 1); eps_S = .75 lies halfway up the sloped segment: eps_B = .5
    assert m.background_rejection(y, s, 0.75) == pytest.approx(2.0)
    assert m.background_rejection(y, s, 0.6) == pytest.approx(1 / 0.2)
    with pytest.raises(ValueError, match="signal_efficiency"):
        m.background_rejection(y, s, 0.0)


def test_background_rejection_matches_the_inverse_of_the_roc():
    y, s = _random(4000, 5)
    fpr, tpr, _ = skm.roc_curve(y, s)
    for eff in (0.3, 0.5, 0.8):
        assert m.background_rejection(y, s, eff) == pytest.approx(1 / np.interp(eff, tpr, fpr), rel=0.02)


# --- accuracy and its threshold --------------------------------------------------------------------

def test_accuracy_uses_a_strict_threshold():
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.5, 0.9])
    assert m.accuracy(y, s, 0.5) == 0.75  # s > 0.5 only for the last sample
    assert m.accuracy(y, s, 0.4) == 0.75
    assert m.accuracy(y, s, 0.05) == 0.5
    assert m.accuracy([1, 1], [0.2, 0.3], 0.25) == 0.5  # one class is fine for accuracy


def test_threshold_at_best_accuracy():
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    t = m.threshold_at_best_accuracy(y, s)
    assert m.accuracy(y, s, t) == 0.75
    y, s = np.array([0, 0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 5.0, 6.0])
    assert m.threshold_at_best_accuracy(y, s) == 4.0  # midway between the classes
    assert m.accuracy(y, s, 4.0) == 1.0
    # all-one-class optima stay finite and give the right predictions
    t = m.threshold_at_best_accuracy([1, 1, 1], [1.0, 2.0, 3.0])
    assert t < 1.0 and m.accuracy([1, 1, 1], [1.0, 2.0, 3.0], t) == 1.0
    t = m.threshold_at_best_accuracy([0, 0], [1.0, 2.0])
    assert m.accuracy([0, 0], [1.0, 2.0], t) == 1.0


def test_threshold_is_optimal_among_all_cuts():
    y, s = _random(500, 6, ties=True)
    best = max(m.accuracy(y, s, t) for t in np.r_[-np.inf, np.unique(s)])
    assert m.accuracy(y, s, m.threshold_at_best_accuracy(y, s)) == best


# --- bootstrap and evaluate ------------------------------------------------------------------------

def test_bootstrap_contains_the_estimate_is_seeded_and_narrows_with_data():
    y, s = _random(2000, 7)
    low, high = m.bootstrap_auc(y, s, n_boot=300, seed=1)
    assert low < m.roc_auc(y, s) < high
    assert m.bootstrap_auc(y, s, n_boot=300, seed=1) == (low, high)
    assert m.bootstrap_auc(y, s, n_boot=300, seed=2) != (low, high)
    y_big, s_big = _random(20000, 8)
    low_big, high_big = m.bootstrap_auc(y_big, s_big, n_boot=300, seed=1)
    assert high_big - low_big < 0.5 * (high - low)  # ~ 1 / sqrt(n): 10x data -> ~0.32x width


def test_bootstrap_matches_a_naive_stratified_bootstrap():
    y, s = _random(600, 9, ties=True)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(0)

    def pairwise_auc(p, q):  # the definition, by brute force over all pairs
        return np.mean((p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :]))

    naive = [pairwise_auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(1000)]
    low, high = m.bootstrap_auc(y, s, n_boot=1000, seed=3, level=0.9)
    ref_low, ref_high = np.quantile(naive, [0.05, 0.95])
    assert low == pytest.approx(ref_low, abs=0.015) and high == pytest.approx(ref_high, abs=0.015)


def test_bootstrap_level_and_chunking():
    y, s = _random(300, 10)
    low90, high90 = m.bootstrap_auc(y, s, n_boot=500, seed=0, level=0.9)
    low99, high99 = m.bootstrap_auc(y, s, n_boot=500, seed=0, level=0.99)
    assert low99 <= low90 < high90 <= high99
    with pytest.raises(ValueError, match="level"):
        m.bootstrap_auc(y, s, seed=0, level=1.0)


def test_evaluate_keys_and_values():
    y, s = _random(3000, 11)
    y_val, s_val = _random(1000, 12)
    t = m.threshold_at_best_accuracy(y_val, s_val)
    out = m.evaluate(y, s, seed=0, threshold=t, n_boot=200)
    assert list(out) == ["auc", "auc_low", "auc_high", "accuracy", "rej_at_eff50", "rej_at_eff30"]
    assert all(isinstance(v, float) for v in out.values())
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert out["auc_low"] < out["auc"] < out["auc_high"]
    assert out["accuracy"] == m.accuracy(y, s, t)
    assert out["rej_at_eff30"] > out["rej_at_eff50"] > 1.0
    assert m.evaluate(y, s, seed=0, threshold=t, n_boot=200) == out  # seeded


# --- properties ------------------------------------------------------------------------------------

@st.composite
def _labelled_scores(draw, distinct: bool):
    n = draw(st.integers(2, 60))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)))
    if distinct:
        s = draw(st.permutations(range(n)))
    else:
        s = draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    return np.array(y), np.array(s, dtype=float)


@settings(max_examples=60, deadline=None)
@given(_labelled_scores(distinct=True))
def test_auc_of_negated_scores_is_the_complement(data):
    y, s = data
    assert m.roc_auc(y, s) + m.roc_auc(y, -s) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(_labelled_scores(distinct=False))
def test_auc_is_invariant_under_monotone_transforms_and_matches_sklearn(data):
    y, s = data
    auc = m.roc_auc(y, s)
    assert auc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert m.roc_auc(y, s ** 3 + 2 * s + 10) == auc  # strictly increasing, exact on small integers
    assert m.roc_auc(y, np.exp(s)) == auc
