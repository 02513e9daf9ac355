from __future__ import annotations

import numpy as np
import pytest

from benchmark import data
from benchmark.data import Sizes, Source, Split, prepare
from benchmark.errors import DataError
from conftest import make_tiny_task


def _all_rows(prepared):
    return {s: np.asarray(prepared.split(s).X).reshape(len(prepared.split(s)), -1) for s in Split}


def test_splits_are_disjoint_balanced_and_sized(tiny_task, tmp_path):
    p = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, seed=3, sizes=Sizes(700, 150, 150))
    rows = _all_rows(p)
    assert {s: len(r) for s, r in rows.items()} == {Split.TRAIN: 700, Split.VAL: 150, Split.TEST: 150}
    seen = np.concatenate(list(rows.values()))
    assert len(np.unique(seen, axis=0)) == 1000  # no training row in validation or test
    for s in Split:
        assert np.mean(np.asarray(p.split(s).y)) == pytest.approx(0.5, abs=0.06)


def test_evaluation_rows_do_not_depend_on_the_training_size(tiny_task, tmp_path):
    """The fixed evaluation splits: the same val and test rows whatever --n-train is, and a smaller
    training split is the start of a larger one (a nested fidelity)."""
    small = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes(100, 300, 600))
    large = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes(900, 300, 600))
    assert small.path != large.path
    for s in (Split.VAL, Split.TEST):
        for k in ("X", "y", "aux", "features"):
            assert (small.path / s.value / f"{k}.npy").read_bytes() == (large.path / s.value / f"{k}.npy").read_bytes()
    np.testing.assert_array_equal(small.split(Split.TRAIN).X, large.split(Split.TRAIN).X[:100])
    assert small.manifest["n_train"] == 100 and large.manifest["split_sizes"]["test"] == 600
    from benchmark.records import DataManifest

    def hashed(p):
        return DataManifest.of_prepared(p.manifest).hash
    assert hashed(small) == hashed(large)  # one board key: the training size is its own column
    assert hashed(prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes(100, 300, 601))) != hashed(small)


def test_real_training_size_is_a_nested_subset_with_fixed_evaluation_rows(tiny_task, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 1, 4, 4)).astype(np.float32)
    (tmp_path / "tiny").mkdir()
    np.savez(tmp_path / "tiny" / "tiny.npz", X=X, y=np.repeat([0, 1], 200))
    full = prepare(tiny_task, source=Source.REAL, root=tmp_path)
    part = prepare(tiny_task, source=Source.REAL, root=tmp_path, sizes=Sizes(train=50))
    assert len(full.split(Split.TRAIN)) == 280 and len(part.split(Split.TRAIN)) == 50
    full_rows, part_rows = ({s: {r.tobytes() for r in np.asarray(p.split(s).X)} for s in Split} for p in (full, part))
    assert part_rows[Split.TRAIN] < full_rows[Split.TRAIN]
    for s in (Split.VAL, Split.TEST):
        assert part_rows[s] == full_rows[s] and not part_rows[s] & full_rows[Split.TRAIN]
    with pytest.raises(DataError, match="--n-val / --n-test.*synthetic data only"):
        prepare(tiny_task, source=Source.REAL, root=tmp_path, sizes=Sizes(50, 20, None))
    with pytest.raises(DataError, match="--n-train 999: tiny's real training split has 280 rows"):
        prepare(tiny_task, source=Source.REAL, root=tmp_path, sizes=Sizes(train=999))


def test_too_small_splits_are_refused_in_one_line(tiny_task, tmp_path):
    with pytest.raises(DataError, match="--n-test 3 is too small"):
        prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes(test=3))


def test_prepared_arrays_are_preprocessed_memmaps_with_features_and_aux(tiny_task, tmp_path):
    p = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes.total(100))
    train = p.split(Split.TRAIN)
    assert isinstance(train.X, np.memmap) and train.X.dtype == np.float32
    assert train.X.shape[1:] == (1, 4, 4) and train.features.shape == (len(train), 2)
    # preprocess doubles the raw image; aux and features are computed on the raw image
    np.testing.assert_allclose(train.X.sum(axis=(1, 2, 3)), 2 * train.aux[:, 0], rtol=1e-5)
    np.testing.assert_allclose(train.features[:, 0], train.aux[:, 0], rtol=1e-6)
    assert p.manifest["source"] == "synthetic" and p.manifest["generator_version"] == "tiny-1"
    assert p.manifest["split_sizes"] == {s.value: len(p.split(s)) for s in Split}


def test_same_inputs_reuse_the_cache_and_different_inputs_never_collide(tmp_path):
    calls = []

    def counting(y, rng):
        calls.append(len(y))
        return make_tiny_task().generate(y, rng)

    task = make_tiny_task(generate=counting)
    a = prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, sizes=Sizes.total(100))
    n_calls = len(calls)
    assert prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, sizes=Sizes.total(100)).path == a.path
    assert len(calls) == n_calls  # nothing regenerated
    paths = {a.path,
             prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=1, sizes=Sizes.total(100)).path,
             prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, sizes=Sizes.total(120)).path,
             prepare(make_tiny_task(generator_version="tiny-2"), source=Source.SYNTHETIC, root=tmp_path,
                     seed=0, sizes=Sizes.total(100)).path}
    assert len(paths) == 4


def test_synthetic_preparation_is_byte_identical_for_the_same_seed(tiny_task, tmp_path):
    n = Sizes(data.SYNTHETIC_CHUNK + 50, 30, 30)  # more than one generator chunk
    a = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "a", seed=7, sizes=n)
    b = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "b", seed=7, sizes=n)
    c = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "c", seed=8, sizes=n)
    for s in Split:
        for k in ("X", "y", "aux", "features"):
            assert (a.path / s.value / f"{k}.npy").read_bytes() == (b.path / s.value / f"{k}.npy").read_bytes()
    assert not np.array_equal(a.split(Split.TRAIN).X, c.split(Split.TRAIN).X)


def test_a_crash_while_preparing_leaves_nothing_half_written(tmp_path):
    calls = []

    def failing(y, rng):
        calls.append(len(y))
        if len(calls) == 2:  # the second chunk fails after the first was written
            raise RuntimeError("boom")
        return make_tiny_task().generate(y, rng)

    task = make_tiny_task(generate=failing)
    with pytest.raises(RuntimeError):
        prepare(task, source=Source.SYNTHETIC, root=tmp_path, sizes=Sizes(2 * data.SYNTHETIC_CHUNK, 30, 30))
    assert list((tmp_path / "prepared" / "tiny").iterdir()) == []


def test_real_source_is_read_hashed_and_split(tiny_task, tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    (tmp_path / "tiny").mkdir()
    np.savez(tmp_path / "tiny" / "tiny.npz", X=rng.normal(size=(100, 1, 4, 4)).astype(np.float32), y=y)
    p = prepare(tiny_task, source=Source.REAL, root=tmp_path)
    assert p.manifest["source"] == "real"
    assert len(p.manifest["files"]["tiny.npz"]["sha256"]) == 64
    assert sum(p.manifest["split_sizes"].values()) == 100
    assert p.manifest["class_counts"]["test"] == [7, 7]  # 50 per class: 35 / 8 / 7, stratified


def test_missing_real_files_say_where_and_what_to_do(tiny_task, tmp_path):
    with pytest.raises(DataError, match=r"no real tiny files in .*tiny.*bench data fetch tiny.*--source synthetic"):
        prepare(tiny_task, source=Source.REAL, root=tmp_path)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert data.data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir(None) == tmp_path / "xdg" / "hepbench"
