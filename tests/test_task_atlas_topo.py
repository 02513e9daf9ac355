"""atlas_topo: the common grid, npz / ROOT readers on tiny files with the exact schema, the generator."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import DataError
from benchmark.stats import describe
from benchmark.tasks import atlas_topo as task
from conftest import feature_auc

SPEC = task.SPEC
NPZ_SET, ROOT_SET = SPEC.file_sets


@pytest.fixture(scope="module")
def synthetic():
    y = np.repeat(np.array([0, 1], dtype=np.int8), 1500)
    return y, SPEC.generate(y, np.random.default_rng(11))


def _columns(n=9, seed=0, transposed=False):
    """Every npz key with the dtypes of the public converter; layers sparse and non-negative."""
    rng = np.random.default_rng(seed)
    cols = {}
    for name, shape in task.NATIVE_SHAPES.items():
        a = rng.exponential(0.01, size=(n, *shape)).astype(np.float32)
        a[rng.random(a.shape) < 0.7] = 0
        cols[name] = a.transpose(0, 2, 1).copy() if transposed else a
    cols.update(clusterE=rng.uniform(0.2, 2000, n), clusterPt=rng.uniform(0.2, 2000, n),
                clusterEta=rng.uniform(-0.7, 0.7, n).astype(np.float32), clusterPhi=rng.uniform(-3, 3, n),
                cluster_nCells=rng.integers(1, 300, n).astype(np.int32), cluster_sumCellE=rng.uniform(0, 10, n),
                label=(np.arange(n) % 2).astype(np.int32))
    return cols


def _npz(tmp_path, cols, name="atlas_topo.npz", compressed=False):
    path = tmp_path / name
    (np.savez_compressed if compressed else np.savez)(path, **cols)
    return path


def _read_all(reader, size=4):
    batches = list(reader.batches(size))
    return np.concatenate([b.X for b in batches]), np.concatenate([b.aux for b in batches])


# --- the common grid -----------------------------------------------------------------------------

def test_resampling_keeps_every_layer_sum_and_shape():
    rng = np.random.default_rng(1)
    for name, shape in task.NATIVE_SHAPES.items():
        a = rng.exponential(1.0, size=(5, *shape)).astype(np.float32)
        r = task.resample_layer(a)
        assert r.shape == (5, 32, 16), name
        np.testing.assert_allclose(r.sum(axis=(1, 2)), a.sum(axis=(1, 2)), rtol=1e-6, err_msg=name)


def test_resampling_sums_fine_strips_and_splits_coarse_cells():
    emb1 = np.zeros((1, 128, 4), dtype=np.float32)
    emb1[0, 4:8, 1] = [1, 2, 3, 4]  # four strips -> one grid row; one 0.1-wide phi cell -> 4 columns
    r = task.resample_layer(emb1)[0]
    np.testing.assert_array_equal(r[1, 4:8], [2.5] * 4)
    assert r.sum() == 10 and np.count_nonzero(r) == 4
    tile2 = np.zeros((1, 2, 4), dtype=np.float32)
    tile2[0, 1, 3] = 64.0
    r = task.resample_layer(tile2)[0]
    assert (r[16:, 12:] == 1.0).all() and r.sum() == 64.0  # one cell -> 16 x 4 sub-cells of equal share


def test_to_image_orders_channels_like_the_spec():
    layers = {k: np.full((2, *s), i + 1, dtype=np.float32) for i, (k, s) in enumerate(task.NATIVE_SHAPES.items())}
    image = task.to_image(layers)
    assert image.shape == (2, *SPEC.image_shape) and image.dtype == np.float32
    for i, (k, s) in enumerate(task.NATIVE_SHAPES.items()):
        assert image[0, i].sum() == pytest.approx((i + 1) * s[0] * s[1]), SPEC.channel_names[i]
    assert SPEC.channel_names == task.LAYERS


# --- the spec --------------------------------------------------------------------------------------

def test_spec_fields():
    assert SPEC.image_shape == (6, 32, 16) and SPEC.class_names == ("pi0", "pi+")
    assert SPEC.aux_names == ("clusterE", "clusterEta") and SPEC.references == ()
    assert [fs.name for fs in SPEC.file_sets] == ["npz", "root"] and SPEC.synthetic_sizes.test == 8_000
    assert NPZ_SET.files[0].pattern == "*.npz" and ROOT_SET.files[0].pattern == "*.root"
    assert "EOS" in NPZ_SET.how_to_get and "ClusterTree" in ROOT_SET.how_to_get


def test_reference_stats_use_the_keys_describe_produces(synthetic):
    y, batch = synthetic
    assert set(SPEC.reference_stats) <= set(describe(SPEC, batch, y))


# --- real files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("compressed", [False, True])
def test_npz_reader_returns_grid_images_labels_and_aux(tmp_path, compressed):
    cols = _columns()
    reader = SPEC.open_real(NPZ_SET, {"atlas_topo.npz": _npz(tmp_path, cols, compressed=compressed)})
    assert reader.y.dtype == np.int8 and reader.y.tolist() == cols["label"].tolist()
    X, aux = _read_all(reader)
    np.testing.assert_array_equal(X, task.to_image(cols))
    np.testing.assert_allclose(aux, np.stack([cols["clusterE"], cols["clusterEta"]], 1).astype(np.float32))
    assert X.dtype == np.float32 and X.shape == (9, 6, 32, 16)


def test_legacy_transposed_file_gives_identical_images(tmp_path):
    normal = SPEC.open_real(NPZ_SET, {"atlas_topo.npz": _npz(tmp_path, _columns(), "a.npz")})
    legacy = SPEC.open_real(NPZ_SET, {"atlas_topo.npz": _npz(tmp_path, _columns(transposed=True), "b.npz")})
    np.testing.assert_array_equal(_read_all(normal)[0], _read_all(legacy)[0])
    np.testing.assert_array_equal(normal.y, legacy.y)


def test_chunked_reading_equals_one_batch(tmp_path):
    reader = SPEC.open_real(NPZ_SET, {"atlas_topo.npz": _npz(tmp_path, _columns(n=11))})
    (whole,) = list(reader.batches(100))
    X, aux = _read_all(reader, size=3)
    np.testing.assert_array_equal(X, whole.X)
    np.testing.assert_array_equal(aux, whole.aux)


def _corrupt(tmp_path, case):
    cols = _columns()
    if case == "missing key":
        del cols["cluster_sumCellE"]
    elif case == "wrong shape":
        cols["EMB2"] = cols["EMB2"][:, :, :15]
    elif case == "mixed orientation":
        cols["EMB3"] = cols["EMB3"].transpose(0, 2, 1).copy()
    elif case == "wrong dtype":
        cols["TileBar1"] = cols["TileBar1"] > 0
    elif case == "text scalar":
        cols["clusterE"] = cols["clusterE"].astype(str)
    elif case == "2d scalar":
        cols["clusterEta"] = cols["clusterEta"][:, None]
    elif case == "length mismatch":
        cols["label"] = cols["label"][:-1]
    elif case == "non-binary labels":
        cols["label"][2] = 2
    elif case == "nan pixel":
        cols["EMB2"][5, 3, 3] = np.nan
    elif case == "inf aux":
        cols["clusterE"][1] = np.inf
    path = _npz(tmp_path, cols, compressed=case == "corrupt member")
    if case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "corrupt member":  # damage the compressed bytes of the last layers, keep the zip index
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 200] = bytes(200)
        path.write_bytes(bytes(data))
    elif case == "not a zip":
        path.write_bytes(b"this is not an npz file" * 20)
    elif case == "single array":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    return path


@pytest.mark.parametrize("case", [
    "missing key", "wrong shape", "mixed orientation", "wrong dtype", "text scalar", "2d scalar",
    "length mismatch", "non-binary labels", "nan pixel", "inf aux", "truncated", "corrupt member",
    "not a zip", "single array",
])
def test_bad_npz_raises_one_line_data_error_naming_the_file(tmp_path, case):
    path = _corrupt(tmp_path, case)
    with pytest.raises(DataError) as excinfo:
        _read_all(SPEC.open_real(NPZ_SET, {"atlas_topo.npz": path}))
    message = str(excinfo.value)
    assert str(path) in message and "\n" not in message


def test_nan_error_says_which_layer_and_sample(tmp_path):
    path = _corrupt(tmp_path, "nan pixel")
    with pytest.raises(DataError, match=r"'EMB2'.*sample 5"):
        _read_all(SPEC.open_real(NPZ_SET, {"atlas_topo.npz": path}), size=4)


def _root(tmp_path, cols, name="atlas_topo.root"):
    uproot = pytest.importorskip("uproot")
    path = tmp_path / name
    with uproot.recreate(path) as f:
        f[task.TREE] = cols
    return path


@pytest.mark.parametrize("transposed", [False, True])
def test_root_reader_matches_the_npz_reader(tmp_path, transposed):
    path = _root(tmp_path, _columns(n=10, transposed=transposed))
    reader = SPEC.open_real(ROOT_SET, {"atlas_topo.root": path})
    expected = SPEC.open_real(NPZ_SET, {"atlas_topo.npz": _npz(tmp_path, _columns(n=10))})
    np.testing.assert_array_equal(reader.y, expected.y)
    for got, want in zip(_read_all(reader, size=3), _read_all(expected, size=100)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", ["no tree", "missing branch", "damaged", "non-binary labels"])
def test_bad_root_raises_data_error(tmp_path, case):
    cols = _columns()
    if case == "missing branch":
        del cols["clusterPt"]
    if case == "non-binary labels":
        cols["label"][0] = 5
    path = _root(tmp_path, cols)
    if case == "no tree":
        import uproot

        with uproot.recreate(path) as f:
            f["OtherTree"] = {"x": np.zeros(3)}
    elif case == "damaged":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as excinfo:
        _read_all(SPEC.open_real(ROOT_SET, {"atlas_topo.root": path}))
    assert str(path) in str(excinfo.value) and "\n" not in str(excinfo.value)


# --- the generator -----------------------------------------------------------------------------------

def test_generated_pixels_are_energy_fractions(synthetic):
    y, batch = synthetic
    assert batch.X.min() >= 0 and np.isfinite(batch.X).all()
    np.testing.assert_allclose(batch.X.sum(axis=(1, 2, 3)), 1.0, rtol=1e-4)
    energy, eta = batch.aux.T
    assert (energy > 0).all() and energy.max() < 2500 and (np.abs(eta) <= 0.7).all()
    assert np.array_equal(SPEC.preprocess(batch.X), batch.X)  # identity, float32


def test_layer_fractions_follow_the_physics(synthetic):
    """pi0 stays in EMB1-3; pi+ leaves a large share in the Tile layers (docs/datasets.md)."""
    y, batch = synthetic
    stats = SPEC.extra_stats(batch, y)
    assert stats["pi0.frac_EMB"] > 0.98
    assert stats["pi+.frac_Tile"] > 0.15 and stats["pi+.frac_EMB"] < 0.85
    assert stats["pi0.frac_EMB"] + stats["pi0.frac_Tile"] == pytest.approx(1.0)


def test_two_photon_peaks_merge_at_high_energy(synthetic):
    y, batch = synthetic
    F = SPEC.features(batch)
    maxima = F[:, SPEC.feature_names.index("emb1_n_maxima")]
    energy = batch.aux[:, 0]
    low = (y == 0) & (energy > 2) & (energy < 10)
    high = (y == 0) & (energy > 50)
    assert (maxima[low] >= 2).mean() > 0.3
    assert (maxima[high] >= 2).mean() < 0.05


def test_task_is_easy_but_not_trivial(synthetic):
    y, batch = synthetic
    auc = feature_auc(SPEC, batch, y)
    assert 0.90 < auc < 0.99
