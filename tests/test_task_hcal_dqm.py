"""hcal_dqm: real-file reader on tiny files with the exact schema, generator determinism and calibration."""
from __future__ import annotations

import fnmatch

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchmark.errors import DataError
from benchmark.stats import describe
from benchmark.tasks import hcal_dqm as task
from conftest import feature_auc

SPEC = task.SPEC
CANONICAL = ("Run355456_Dataset.npy", "Run357479_Dataset.npy")
MIRROR = ("Run355456_Dataset_jqkne.npy", "Run357479_Dataset_iodic.npy")


@pytest.fixture(scope="module")
def synthetic():
    y = np.repeat(np.array([0, 1], dtype=np.int8), 2000)
    return y, SPEC.generate(y, np.random.default_rng(7))


def _write_runs(tmp_path, names=CANONICAL, sizes=(5, 3), dtype=np.float64):
    """Two run files whose pixels encode (run, lumisection), so order and labels can be checked."""
    arrays, paths = [], {}
    for run, (name, n) in enumerate(zip(names, sizes)):
        a = np.zeros((n, 64, 72), dtype=dtype)
        a[:, 5, 7] = 100 * (run + 1) + np.arange(n)
        a[:, 55, 8] = 3
        np.save(tmp_path / name, a)
        arrays.append(a)
        paths[CANONICAL[run]] = tmp_path / name  # the locator hands files over under their canonical name
    return arrays, paths


def _open(paths):
    return SPEC.open_real(SPEC.file_sets[0], paths)


def test_spec_matches_the_documented_files():
    assert SPEC.image_shape == (1, 64, 72) and SPEC.channel_names == ("occupancy",)
    assert SPEC.class_names == ("Run355456", "Run357479") and SPEC.aux_names == ("lumisection",)
    assert SPEC.synthetic_sizes.test == 6000
    (file_set,) = SPEC.file_sets
    assert tuple(f.name for f in file_set.files) == CANONICAL
    for f, canonical, mirror in zip(file_set.files, CANONICAL, MIRROR):
        assert fnmatch.fnmatch(canonical, f.pattern) and fnmatch.fnmatch(mirror, f.pattern)
    assert not fnmatch.fnmatch(MIRROR[1], file_set.files[0].pattern)  # the runs never swap
    assert {(r.metric, r.value) for r in SPEC.references} == {("accuracy", 1.0), ("auc", 1.0)}


def test_reference_stats_use_the_keys_describe_produces(synthetic):
    y, batch = synthetic
    assert set(SPEC.reference_stats) <= set(describe(SPEC, batch, y))


@pytest.mark.parametrize("names", [CANONICAL, MIRROR], ids=["canonical", "mirror"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_reader_yields_run355456_then_run357479(tmp_path, names, dtype):
    arrays, paths = _write_runs(tmp_path, names, dtype=dtype)
    reader = _open(paths)
    assert reader.y.dtype == np.int8 and reader.y.tolist() == [0] * 5 + [1] * 3
    assert [p.name for p in reader.files] == list(names)
    batches = list(reader.batches(3))
    assert [len(b.X) for b in batches] == [3, 3, 2]  # batches cross the file boundary
    X = np.concatenate([b.X for b in batches])
    assert X.dtype == np.float32 and X.shape == (8, 1, 64, 72)
    np.testing.assert_array_equal(X[:, 0], np.concatenate(arrays).astype(np.float32))
    lumisection = np.concatenate([b.aux for b in batches])[:, 0]
    assert lumisection.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]


def test_chunked_reading_equals_one_batch(tmp_path):
    _, paths = _write_runs(tmp_path, sizes=(7, 6))
    reader = _open(paths)
    (whole,) = list(reader.batches(1000))
    parts = list(reader.batches(2))
    np.testing.assert_array_equal(np.concatenate([b.X for b in parts]), whole.X)
    np.testing.assert_array_equal(np.concatenate([b.aux for b in parts]), whole.aux)


def _assert_names_file(excinfo, path):
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("bad", ["shape", "dtype", "pickle", "archive", "truncated", "garbage"])
def test_bad_files_raise_one_line_data_errors(tmp_path, bad):
    _, paths = _write_runs(tmp_path)
    target = paths[CANONICAL[1]]
    if bad == "shape":
        np.save(target, np.zeros((4, 64, 71)))
    elif bad == "dtype":
        np.save(target, np.full((4, 64, 72), "x"))
    elif bad == "pickle":
        np.save(target, np.empty((4, 64, 72), dtype=object), allow_pickle=True)
    elif bad == "archive":
        with open(target, "wb") as f:
            np.savez(f, X=np.zeros((4, 64, 72)))
    elif bad == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    else:
        target.write_bytes(b"\x00not a numpy file" * 10)
    with pytest.raises(DataError) as excinfo:
        list(_open(paths).batches(4))
    _assert_names_file(excinfo, target)


def test_nan_pixel_is_reported_with_its_sample(tmp_path):
    arrays, paths = _write_runs(tmp_path)
    bad = arrays[0].copy()
    bad[3, 10, 10] = np.nan
    np.save(paths[CANONICAL[0]], bad)
    with pytest.raises(DataError, match="sample 3") as excinfo:
        list(_open(paths).batches(2))
    _assert_names_file(excinfo, paths[CANONICAL[0]])


def test_lumisection_index_lies_within_a_run_file():
    a = SPEC.generate(np.array([0, 1, 1, 0, 1], dtype=np.int8), np.random.default_rng(3))
    assert ((a.aux >= 0) & (a.aux < 10_000)).all()


def test_detector_mask_is_fixed_and_gives_the_published_zero_fraction():
    mask = task.detector_mask()
    assert mask.sum() == 932  # 20.23 % of 4608: zero fraction 0.7977
    rows = np.flatnonzero(mask.any(axis=1))
    assert set(rows) == set(range(3, 14)) | set(range(50, 61))  # two ieta bands near the edges
    assert (mask == mask[::-1]).sum() > 0.99 * mask.size  # both sides alike, up to masked channels


def test_calibration_matches_the_documented_statistics(synthetic):
    """Tolerances: zero fraction +-0.002, per-run mean / std / max within 5 % (docs/datasets.md:
    157.14 / 364.31 / 1565 and 181.08 / 362.53 / 1092)."""
    y, batch = synthetic
    stats = describe(SPEC, batch, y)
    assert stats["occupancy.zero_fraction"] == pytest.approx(0.7977, abs=0.002)
    assert stats["occupancy.min"] == 0
    for run, mean, std, peak in (("Run355456", 157.14, 364.31, 1565), ("Run357479", 181.08, 362.53, 1092)):
        assert stats[f"{run}.mean"] == pytest.approx(mean, rel=0.05), run
        assert stats[f"{run}.std"] == pytest.approx(std, rel=0.05), run
        assert stats[f"{run}.max"] == pytest.approx(peak, rel=0.05), run
    # identical zero mask in both runs: apart from rare dead boxes, every image has exactly the mask's zeros
    nonzero = batch.X[:, 0] != 0
    same = (nonzero == task.detector_mask()).all(axis=(1, 2))
    assert same[y == 0].mean() > 0.95 and same[y == 1].mean() > 0.95
    assert not nonzero[:, ~task.detector_mask()].any()


def test_runs_are_nearly_separable_but_not_by_total_intensity_alone(synthetic):
    y, batch = synthetic
    assert feature_auc(SPEC, batch, y) > 0.97
    F = SPEC.features(batch)
    total = F[:, SPEC.feature_names.index("total")]
    assert 0.5 < roc_auc_score(y, total) < 0.8  # intensities overlap: Run355456 spans Run357479's level


def test_features_band_fractions_sum_to_one(synthetic):
    _, batch = synthetic
    F = SPEC.features(batch)
    bands = [SPEC.feature_names.index(k) for k in SPEC.feature_names if k.startswith("frac_")]
    np.testing.assert_allclose(F[:, bands].sum(axis=1), 1.0, rtol=1e-5)


def test_preprocess_is_fixed_log_scale_per_sample(synthetic):
    _, batch = synthetic
    X = batch.X[:50]
    P = SPEC.preprocess(X)
    assert P.dtype == np.float32 and P.min() >= 0 and P.max() <= 1
    np.testing.assert_array_equal(SPEC.preprocess(X[:7]), P[:7])  # no dataset-level state
    value = SPEC.preprocess(np.full((1, 1, 64, 72), 1565.0, dtype=np.float32))[0, 0, 0, 0]
    assert value == pytest.approx(np.log1p(1565) / np.log1p(2000), rel=1e-6)
    assert SPEC.preprocess(np.full((1, 1, 64, 72), 1e6, dtype=np.float32)).max() == 1.0
