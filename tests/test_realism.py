"""bench data compare (benchmark.realism): the two-sample test where the answer is known, every task's
real files in their exact schema (small files written here), the ML4SCI sample's layout, bad input, and
(real_data) the 200 real ee_gamma crops beside the project, when they are there."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bad_input import assert_one_clean_line, bench
from test_task_atlas_topo import _columns, _npz
from test_task_ee_gamma import ELECTRON_FILE, PHOTON_FILE, _crops, _write
from test_task_hcal_dqm import CANONICAL
from test_task_quark_gluon import _jets, _write_parquet

from benchmark import realism
from benchmark.tasks import get_task
from benchmark.tasks.quark_gluon import PARQUET_FILES

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "electron-photon.npz"


def _showers(n: int, width: float, rng) -> np.ndarray:
    """(n, 1, 16, 16) Gaussian blobs of a given width at a random sub-cell position, with noise hits."""
    r = np.arange(16)[None, :, None] - 8 - rng.random((n, 1, 1))
    c = np.arange(16)[None, None, :] - 8 - rng.random((n, 1, 1))
    E = np.exp(-(r ** 2 + c ** 2) / (2 * width ** 2)) * rng.uniform(20, 60, (n, 1, 1))
    E += np.where(rng.random(E.shape) < 0.05, rng.exponential(0.1, E.shape), 0.0)
    return E[:, None]


def test_the_two_sample_test_cannot_tell_a_sample_from_itself_and_tells_different_showers_apart():
    rng = np.random.default_rng(0)
    same = realism.c2st(_showers(150, 1.0, rng), _showers(300, 1.0, rng))
    assert same["low"] <= 0.5 + 0.1 and same["auc"] < 0.65, same
    other = realism.c2st(_showers(150, 1.0, rng), _showers(300, 1.6, rng))
    assert other["auc"] > 0.9 and other["low"] > 0.8, other
    assert other["low"] <= other["auc"] <= other["high"]
    assert other["top_inputs"][0][0].startswith("c0.")


def test_shape_statistics_are_scale_free_and_measure_what_they_say():
    rng = np.random.default_rng(1)
    E = _showers(50, 1.0, rng)[:, 0]
    a, b = realism.shape_stats(E), realism.shape_stats(1e-3 * E)  # GeV or a scaled copy: the same
    for k in realism.STATS:
        np.testing.assert_allclose(a[k], b[k])
    one = np.zeros((1, 8, 8))
    one[0, 4, 4], one[0, 4, 5] = 3.0, 1.0
    s = realism.shape_stats(one)
    assert s["max_share"][0] == 0.75 and s["e3x3_share"][0] == 1.0 and s["lit"][0] == 2
    assert s["width_rows_5x5"][0] == 0 and s["width_cols_5x5"][0] == pytest.approx(np.sqrt(0.75 * 0.25))


def _ee_gamma(folder: Path, n: int = 24) -> None:
    _write(folder / ELECTRON_FILE, _crops(n, 100), np.ones(n, np.float32))
    _write(folder / PHOTON_FILE, _crops(n, 10), np.zeros(n, np.float32))


def _quark_gluon(folder: Path, n: int = 16) -> None:
    for k, name in enumerate(PARQUET_FILES):
        _write_parquet(folder / name, _jets(n, 10 * k), k * n)


def _hcal_dqm(folder: Path, n: int = 24) -> None:
    rng = np.random.default_rng(2)
    for name in CANONICAL:
        np.save(folder / name, rng.poisson(3.0, (n, 64, 72)).astype(np.float64))


def _atlas_topo(folder: Path, n: int = 48) -> None:
    _npz(folder, _columns(n))


@pytest.mark.parametrize("task, write", [("ee_gamma", _ee_gamma), ("quark_gluon", _quark_gluon),
                                         ("hcal_dqm", _hcal_dqm), ("atlas_topo", _atlas_topo)])
def test_bench_data_compare_reads_every_tasks_real_schema(capsys, tmp_path, task, write):
    folder = tmp_path / "real"
    folder.mkdir()
    write(folder)
    out_file = tmp_path / "compare.md"
    code, err = bench(capsys, "data", "compare", task, "--real", str(folder), "--n-synthetic", "60",
                      "--out", str(out_file))
    assert code == 0, err
    page = out_file.read_text()
    spec = get_task(task)
    for name in spec.class_names:
        assert f"| {name} | " in page
    compared = [spec.channel_names[i] for i in realism.energy_channels(spec)]
    assert all(f"| {c} | lit |" in page for c in compared) and "| time |" not in page
    aucs = [float(line.split(" | ")[3]) for line in page.splitlines()
            if line.startswith(tuple(f"| {n} | " for n in spec.class_names)) and "[" in line]
    assert len(aucs) == 2 and all(0 <= a <= 1 for a in aucs)


def test_the_ml4sci_layout_is_read_as_energy_only(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.exponential(0.01, (40, 32, 32)).astype(np.float32)
    y = (np.arange(40) % 2).astype(np.float32)
    np.savez(tmp_path / "s.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    sample = realism.read_real(get_task("ee_gamma"), tmp_path / "s.npz")
    assert sample.X.shape == (40, 1, 32, 32) and sample.channels == ("energy",) and sample.y.sum() == 20


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("empty", "none of ee_gamma's real file sets is there"),
    ("keys", "no y_test"),
    ("task", "an .npz sample is read for ee_gamma only"),
    ("few", "the test needs at least 10"),
])
def test_bad_real_input_is_one_line(capsys, tmp_path, case, message):
    task, real = "ee_gamma", tmp_path / "real"
    if case == "empty":
        real.mkdir()
    elif case in ("keys", "task", "few"):
        real = tmp_path / "s.npz"
        x, y = np.ones((6, 32, 32), np.float32), (np.arange(6) % 2).astype(np.float32)
        np.savez(real, x_train=x, y_train=y, x_test=x, **({} if case == "keys" else {"y_test": y}))
        task = "hcal_dqm" if case == "task" else task
    code, err = bench(capsys, "data", "compare", task, "--real", str(real), "--n-synthetic", "40")
    assert_one_clean_line(code, err, message)


@pytest.mark.real_data
@pytest.mark.skipif(not SAMPLE.is_file(), reason=f"the real ee_gamma sample is not at {SAMPLE}")
def test_the_real_ee_gamma_crops_against_the_generator():
    """The 200 real crops' statistics as measured when the sample was found, and the two-sample test with
    its interval (the generator's distance from them: docs/datasets.md)."""
    task = get_task("ee_gamma")
    real = realism.read_real(task, SAMPLE)
    assert real.X.shape == (200, 1, 32, 32) and int(real.y.sum()) == 102
    medians = {(label, k): float(np.median(v)) for label in (0, 1)
               for k, v in realism.shape_stats(real.X[real.y == label, 0]).items()}
    assert medians[0, "max_share"] == pytest.approx(0.60, abs=0.01) and medians[1, "max_share"] == pytest.approx(0.49, abs=0.01)
    assert medians[0, "lit"] == pytest.approx(41.5) and medians[1, "lit"] == 47
    assert medians[0, "width_rows_5x5"] == pytest.approx(0.46, abs=0.01)
    result = realism.compare(task, SAMPLE, n_synthetic=600)
    for name in task.class_names:
        t = result.tests[name]
        assert 0.5 <= t["low"] <= t["auc"] <= t["high"] <= 1 and t["real"] in (98, 102)
