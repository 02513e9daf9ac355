"""quark_gluon: HDF5 and parquet readers on small files with the real schema, and the generator."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.errors import DataError
from benchmark.stats import describe
from benchmark.tasks import get_task
from benchmark.tasks.quark_gluon import HDF5_FILE, PARQUET_FILES
from conftest import feature_auc

TASK = get_task("quark_gluon")
HDF5_SET, PARQUET_SET = (next(s for s in TASK.file_sets if s.name == name) for name in ("hdf5", "parquet"))


def _jets(n: int, first: int = 0) -> np.ndarray:
    """(n, 3, 125, 125) channels-first jets; jet i has first + i + 1 (+ channel) at (i, 2 i + channel)."""
    X = np.zeros((n, 3, 125, 125), np.float32)
    for i in range(n):
        for c in range(3):
            X[i, c, i, 2 * i + c] = first + i + 1 + c
    X[:, 1, 60, 60] = -0.1  # ECAL can be negative
    return X


def _labels(n: int, first: int = 0) -> np.ndarray:
    return ((np.arange(n) + first) % 2).astype(np.float32)


def _write_h5(path: Path, X=None, y=None, drop: str | None = None, **override) -> Path:
    n = 5
    data = {"X_jets": _jets(n).transpose(0, 2, 3, 1) if X is None else X,
            "m0": np.linspace(5, 25, n, dtype=np.float32), "pt": np.linspace(70, 300, n, dtype=np.float32),
            "y": _labels(n) if y is None else y}
    data.update(override)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if key != drop:
                f.create_dataset(key, data=value, chunks=True if np.ndim(value) > 1 else None)
    return path


def _nested(X: np.ndarray, value_type=pa.float64()) -> pa.Array:
    """(n, a, b, c) array -> list<list<list<value>>>, the layout pandas writes for nested arrays."""
    n, a, b, c = X.shape
    arr = pa.array(X.reshape(-1), type=value_type)
    for count, width in ((n * a * b, c), (n * a, b), (n, a)):
        arr = pa.ListArray.from_arrays(pa.array(np.arange(count + 1) * width, pa.int32()), arr)
    return arr


def _write_parquet(path: Path, X: np.ndarray, first: int, **override) -> Path:
    n = len(X)
    columns = {"X_jets": _nested(X), "pt": pa.array(np.linspace(70, 300, n) + first),
               "m0": pa.array(np.linspace(5, 25, n) + first),
               "y": pa.array(_labels(n, first).astype(np.float64))}
    columns.update(override)
    columns = {key: value for key, value in columns.items() if value is not None}  # None drops a column
    pq.write_table(pa.table(columns), path, compression="snappy", row_group_size=2)
    return path


@pytest.fixture
def parquet_files(tmp_path):
    sizes, paths, first = (2, 3, 1), {}, 0  # first: index of the file's first jet overall
    for k, (name, n) in enumerate(zip(PARQUET_FILES, sizes)):
        paths[name] = _write_parquet(tmp_path / name, _jets(n, 10 * k), first)
        first += n
    return paths


def _read(file_set, paths, size: int):
    reader = TASK.open_real(file_set, paths)
    batches = list(reader.batches(size))
    return reader, np.concatenate([b.X for b in batches]), np.concatenate([b.aux for b in batches])


def test_spec_matches_the_documented_files():
    assert TASK.image_shape == (3, 125, 125) and TASK.channel_names == ("tracks_pt", "ecal", "hcal")
    assert TASK.class_names == ("quark", "gluon") and TASK.aux_names == ("pt", "m0")
    assert "unverified" in TASK.label_note.lower() or "assumed" in TASK.label_note.lower()
    assert [f.name for f in HDF5_SET.files] == [HDF5_FILE] and HDF5_SET.files[0].url is None
    assert [f.name for f in PARQUET_SET.files] == [
        f"QCDToGGQQ_IMGjet_RH1all_jet0_run{i}_n{n}.test.snappy.parquet"
        for i, n in enumerate((36272, 47540, 55494))]
    assert all(f.url == f"https://cernbox.cern.ch/remote.php/dav/public-files/oolDBdQegsITFcv/{f.name}"
               for f in PARQUET_SET.files)
    assert TASK.synthetic_sizes.test == 12_000


def test_hdf5_reader_shapes_labels_order(tmp_path):
    path = _write_h5(tmp_path / HDF5_FILE)
    reader, X, aux = _read(HDF5_SET, {HDF5_FILE: path}, size=100)
    assert reader.y.dtype == np.int8 and reader.y.tolist() == [0, 1, 0, 1, 0]
    assert X.shape == (5, 3, 125, 125) and X.dtype == np.float32
    np.testing.assert_array_equal(X, _jets(5))  # channels last on disk -> channels first
    np.testing.assert_allclose(aux, np.stack([np.linspace(70, 300, 5), np.linspace(5, 25, 5)], 1), rtol=1e-6)


def test_parquet_reader_shapes_labels_order(parquet_files):
    reader, X, aux = _read(PARQUET_SET, parquet_files, size=100)
    assert reader.y.dtype == np.int8 and reader.y.tolist() == [0, 1, 0, 1, 0, 1]
    expected = np.concatenate([_jets(2, 0), _jets(3, 10), _jets(1, 20)])
    np.testing.assert_array_equal(X, expected)
    # pt and m0 follow the jets across files: file 2 starts at jet 2, file 3 at jet 5.
    assert aux[0, 0] == pytest.approx(70) and aux[2, 0] == pytest.approx(72)
    assert aux[5, 1] == pytest.approx(10)
    assert reader.files == tuple(parquet_files[name] for name in PARQUET_FILES)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_chunked_reading_matches_one_batch(tmp_path, parquet_files, size):
    h5 = {HDF5_FILE: _write_h5(tmp_path / HDF5_FILE)}
    for file_set, paths in ((HDF5_SET, h5), (PARQUET_SET, parquet_files)):
        _, X_all, aux_all = _read(file_set, paths, size=1000)
        reader, X, aux = _read(file_set, paths, size=size)
        assert all(len(b.X) <= size for b in reader.batches(size))
        np.testing.assert_array_equal(X, X_all)
        np.testing.assert_array_equal(aux, aux_all)


def _nan_jets():
    X = _jets(5).transpose(0, 2, 3, 1).copy()
    X[3, 1, 1, 2] = np.nan
    return X


@pytest.mark.parametrize("case, kwargs, match", [
    ("missing X_jets", {"drop": "X_jets"}, "missing key"),
    ("missing m0", {"drop": "m0"}, "missing key"),
    ("channels first on disk", {"X": _jets(5)}, "shape"),
    ("wrong size", {"X": np.zeros((5, 64, 64, 3), np.float32)}, "shape"),
    ("wrong dtype", {"X": np.full((5, 125, 125, 3), b"x", dtype="S1")}, "dtype"),
    ("nan pixel", {"X": _nan_jets()}, "NaN"),
    ("non-binary labels", {"y": np.array([0, 1, 2, 0, 1], np.float32)}, "not binary"),
    ("nan pt", {"pt": np.array([70, np.nan, 80, 90, 100], np.float32)}, "NaN"),
    ("short m0", {"m0": np.ones(4, np.float32)}, "m0"),
])
def test_bad_hdf5_raises_one_line_data_error(tmp_path, case, kwargs, match):
    path = _write_h5(tmp_path / HDF5_FILE, **kwargs)
    with pytest.raises(DataError, match=match) as info:
        list(TASK.open_real(HDF5_SET, {HDF5_FILE: path}).batches(2))
    assert HDF5_FILE in str(info.value) and "\n" not in str(info.value)


def test_truncated_hdf5_raises_data_error(tmp_path):
    path = _write_h5(tmp_path / HDF5_FILE, X=np.random.default_rng(0).random((5, 125, 125, 3), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        list(TASK.open_real(HDF5_SET, {HDF5_FILE: path}).batches(2))
    assert HDF5_FILE in str(info.value) and "\n" not in str(info.value)


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":
        path.write_bytes(b"PAR1" + b"\x00garbage" * 200)
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "corrupt", "missing"])
def test_unreadable_parquet_raises_data_error(parquet_files, how):
    path = parquet_files[PARQUET_FILES[1]]
    _damage(path, how)
    with pytest.raises(DataError) as info:
        list(TASK.open_real(PARQUET_SET, parquet_files).batches(2))
    assert path.name in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("case, make, match", [
    ("missing y", lambda p: _write_parquet(p, _jets(3), 0, y=None), "missing key"),
    ("wrong nested shape", lambda p: _write_parquet(p, _jets(3), 0, X_jets=_nested(_jets(3)[:, :, :, :124])),
     "not \\(3, 125, 125\\)"),
    ("flat X_jets", lambda p: _write_parquet(p, _jets(3), 0, X_jets=pa.array([1.0, 2.0, 3.0])), "type"),
    ("nan pixel",
     lambda p: _write_parquet(p, _jets(3), 0, X_jets=_nested(np.full((3, 3, 125, 125), np.nan))), "NaN"),
    ("non-binary labels",
     lambda p: _write_parquet(p, _jets(3), 0, y=pa.array([0.0, 0.5, 1.0])), "not binary"),
])
def test_bad_parquet_schema_raises_data_error(parquet_files, case, make, match):
    path = parquet_files[PARQUET_FILES[2]]
    make(path)
    with pytest.raises(DataError, match=match) as info:
        list(TASK.open_real(PARQUET_SET, parquet_files).batches(2))
    assert path.name in str(info.value) and "\n" not in str(info.value)


def test_parquet_float32_values_are_read(parquet_files, tmp_path):
    path = parquet_files[PARQUET_FILES[0]]
    X = _jets(2)
    _write_parquet(path, X, 0, X_jets=_nested(X, pa.float32()))
    _, got, _ = _read(PARQUET_SET, parquet_files, size=10)
    np.testing.assert_array_equal(got[:2], X)


@pytest.fixture(scope="module")
def generated():
    y = np.random.default_rng(5).integers(0, 2, 2000).astype(np.int8)
    return TASK.generate(y, np.random.default_rng(5)), y


def test_generator_calibration(generated):
    """describe() lands near docs/datasets.md: zero fractions within the stated bands, ranges within ~2x."""
    batch, y = generated
    s = describe(TASK, batch, y)
    assert 0.9955 <= s["tracks_pt.zero_fraction"] <= 0.9985   # ~99.7 %
    assert 0.970 <= s["ecal.zero_fraction"] <= 0.985           # ~97.8 %
    assert 0.970 <= s["hcal.zero_fraction"] <= 0.985           # ~97.8 %
    assert s["tracks_pt.min"] == 0 and 5 <= s["tracks_pt.max"] <= 20         # 0-10
    assert -0.35 <= s["ecal.min"] <= -0.12 and 6 <= s["ecal.max"] <= 25      # -0.22-12.7
    assert s["hcal.min"] == 0 and 0.06 <= s["hcal.max"] <= 0.26             # 0-0.13
    assert 70 <= s["pt.min"] < 80 and 250 < s["pt.max"] <= 340              # 70-340 GeV
    assert 10 <= s["ecal.active_pixels.p01"] and s["ecal.active_pixels.p99"] <= 1200  # "20-700"
    # The label-convention check docs/datasets.md suggests holds for the generator's 1 = gluon.
    assert s["tracks_pt.active_pixels.label1"] > s["tracks_pt.active_pixels.label0"]
    assert s["m0.mean.label1"] > 1.1 * s["m0.mean.label0"]
    # HCAL is coarse: every 5x5 tower is uniform.
    towers = batch.X[:, 2].reshape(len(y), 25, 5, 25, 5)
    assert (towers == towers[:, :, :1, :, :1]).all()


def test_class_separation_is_realistic(generated):
    batch, y = generated
    auc = feature_auc(TASK, batch, y)
    assert 0.6 < auc < 0.95, auc


def test_preprocess_matches_original_training_code():
    X = np.zeros((1, 3, 125, 125), np.float32)
    X[0, :, 0, 0] = [5.0, 0.0005, 0.1]   # ECAL below 1e-3 is suppressed
    X[0, 1, 1, 1] = -0.2                 # negative ECAL noise too
    out = TASK.preprocess(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [0.05, 0.0, 0.025])
    assert out[0, 1, 1, 1] == 0 and X[0, 1, 1, 1] == -0.2  # input untouched
    np.testing.assert_array_equal(TASK.preprocess(X[0]), out[0])  # per sample == per batch
