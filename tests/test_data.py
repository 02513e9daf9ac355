from __future__ import annotations

import numpy as np
import pytest

from benchmark import data
from benchmark.data import Source, Split, prepare
from benchmark.errors import DataError
from conftest import make_tiny_task


def _all_rows(prepared):
    return {s: np.asarray(prepared.split(s).X).reshape(len(prepared.split(s)), -1) for s in Split}


def test_splits_are_disjoint_stratified_and_complete(tiny_task, tmp_path):
    p = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, seed=3, n_samples=1000)
    rows = _all_rows(p)
    assert sum(len(r) for r in rows.values()) == 1000
    seen = np.concatenate(list(rows.values()))
    assert len(np.unique(seen, axis=0)) == 1000  # every sample lands in exactly one split
    for s, frac in zip(Split, tiny_task.split_fractions):
        y = np.asarray(p.split(s).y)
        assert len(y) == pytest.approx(1000 * frac, abs=2)
        assert np.mean(y) == pytest.approx(0.5, abs=0.01)  # stratified: balance kept in every split


def test_prepared_arrays_are_preprocessed_memmaps_with_features_and_aux(tiny_task, tmp_path):
    p = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path, n_samples=100)
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
    a = prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, n_samples=100)
    n_calls = len(calls)
    assert prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, n_samples=100).path == a.path
    assert len(calls) == n_calls  # nothing regenerated
    paths = {a.path,
             prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=1, n_samples=100).path,
             prepare(task, source=Source.SYNTHETIC, root=tmp_path, seed=0, n_samples=120).path,
             prepare(make_tiny_task(generator_version="tiny-2"), source=Source.SYNTHETIC, root=tmp_path,
                     seed=0, n_samples=100).path}
    assert len(paths) == 4


def test_synthetic_preparation_is_byte_identical_for_the_same_seed(tiny_task, tmp_path):
    n = data.CHUNK + 500  # more than one generator chunk
    a = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "a", seed=7, n_samples=n)
    b = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "b", seed=7, n_samples=n)
    c = prepare(tiny_task, source=Source.SYNTHETIC, root=tmp_path / "c", seed=8, n_samples=n)
    for s in Split:
        for k in ("X", "y", "aux", "features"):
            assert (a.path / s.value / f"{k}.npy").read_bytes() == (b.path / s.value / f"{k}.npy").read_bytes()
    assert not np.array_equal(a.split(Split.TRAIN).X, c.split(Split.TRAIN).X)


def test_a_crash_while_preparing_leaves_nothing_half_written(tmp_path):
    def failing(y, rng):
        if len(y) < data.CHUNK:  # the second (last, short) chunk fails after the first was written
            raise RuntimeError("boom")
        return make_tiny_task().generate(y, rng)

    task = make_tiny_task(generate=failing)
    with pytest.raises(RuntimeError):
        prepare(task, source=Source.SYNTHETIC, root=tmp_path, n_samples=data.CHUNK + 10)
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
    assert p.manifest["class_counts"]["test"] == [7, 7]  # 50 per class: 35 / 8 / 7


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
