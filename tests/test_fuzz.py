"""Property-based tests: arbitrary search-space files and arbitrary (damaged) data files give either a
valid result or the one-line error the CLI turns into exit code 2, never another exception."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmark.errors import BenchError, ConfigError
from benchmark.models import get_model_class
from benchmark.search_space import load_space
from benchmark.tasks import get_task

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=10)
KEYS = list(get_model_class("resnet15").default_config)
PARAMS = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["float", "int", "categorical", "fixed", "loguniform"]) | VALUES,
    "low": st.floats() | st.integers(-5, 5) | VALUES, "high": st.floats() | st.integers(-5, 100) | VALUES,
    "log": st.booleans() | VALUES, "step": st.floats(0, 2) | VALUES, "choices": st.lists(SCALARS, max_size=4) | VALUES,
    "value": SCALARS, "when": st.dictionaries(st.sampled_from(KEYS), st.lists(SCALARS, max_size=3)) | VALUES})
SPACES = st.dictionaries(st.sampled_from(KEYS) | TEXT, PARAMS | VALUES, max_size=5) | VALUES


def _load_or_config_error(text: str):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "space.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            space = load_space("resnet15", path, known_keys=get_model_class("resnet15").default_config)
        except ConfigError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):  # a space that loads can be sampled
        trial = study.ask()
        fixed = space.suggest(trial)
        assert set(fixed) | set(trial.params) <= set(KEYS)
        study.tell(trial, 0.5)


@FUZZ
@given(SPACES)
def test_arbitrary_yaml_structures_load_or_raise_config_error(raw):
    _load_or_config_error(yaml.safe_dump(raw, allow_unicode=True))


@FUZZ
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_arbitrary_text_loads_or_raises_config_error(text):
    _load_or_config_error(text)


# --- readers -------------------------------------------------------------------------------------

def _read_all(task_name: str, file_set: str, paths: dict[str, Path]) -> None:
    """Read every batch; a valid result has the task's shape and finite pixels."""
    task = get_task(task_name)
    fs = next(s for s in task.file_sets if s.name == file_set)
    try:
        reader = task.open_real(fs, paths)
        for batch in reader.batches(3):
            assert batch.X.shape[1:] == task.image_shape and np.isfinite(batch.X).all()
        assert set(np.unique(reader.y)) <= {0, 1}
    except BenchError as e:
        assert "\n" not in str(e)


HCAL = get_task("hcal_dqm")
HCAL_NAMES = [f.name for f in HCAL.file_sets[0].files]
ARRAYS = hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_, np.complex64,
                                           np.dtype("<U2")]),
                    shape=st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, max_side=5),
                                    st.sampled_from([(2, 64, 72), (3, 64, 72, 1)])))


@FUZZ
@given(ARRAYS, st.booleans())
def test_arbitrary_npy_arrays_read_or_raise_data_error(array, both):
    with tempfile.TemporaryDirectory() as d:
        good = np.zeros((2, 64, 72))
        paths = {}
        for i, name in enumerate(HCAL_NAMES):
            paths[name] = Path(d) / name
            np.save(paths[name], array if (both or i == 1) else good)
        _read_all("hcal_dqm", "npy", paths)


def _valid_files(task_name: str, d: Path) -> tuple[str, dict[str, Path]]:
    """Small valid files of each format, written with the real schema by the task tests' helpers."""
    if task_name == "hcal_dqm":
        paths = {}
        for name in HCAL_NAMES:
            paths[name] = d / name
            np.save(paths[name], np.abs(np.random.default_rng(0).normal(size=(3, 64, 72))))
        return "npy", paths
    if task_name == "atlas_topo":
        from test_task_atlas_topo import _corrupt

        path = _corrupt(d, "none")
        return "npz", {path.name: path}
    if task_name == "ee_gamma":
        from test_task_ee_gamma import ELECTRON_FILE, PHOTON_FILE, _crops, _write

        return "hdf5", {ELECTRON_FILE: _write(d / ELECTRON_FILE, _crops(3, 1), np.ones(3)),
                        PHOTON_FILE: _write(d / PHOTON_FILE, _crops(3, 5), np.zeros(3))}
    from test_task_quark_gluon import _jets, _write_parquet

    from benchmark.tasks.quark_gluon import PARQUET_FILES

    return "parquet", {name: _write_parquet(d / name, _jets(2, 10 * k), 2 * k) for k, name in enumerate(PARQUET_FILES)}


@pytest.mark.parametrize("task_name", ["hcal_dqm", "atlas_topo", "ee_gamma", "quark_gluon"])
@FUZZ
@given(data=st.data())
def test_damaged_files_read_or_raise_data_error(task_name, data):
    """Truncate a file, or overwrite a run of its bytes, anywhere."""
    with tempfile.TemporaryDirectory() as d:
        file_set, paths = _valid_files(task_name, Path(d))
        target = paths[data.draw(st.sampled_from(sorted(paths)), label="file")]
        raw = bytearray(target.read_bytes())
        if data.draw(st.booleans(), label="truncate"):
            raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="keep")]
        else:
            start = data.draw(st.integers(0, len(raw) - 1), label="start")
            junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
            raw[start:start + len(junk)] = junk
        target.write_bytes(bytes(raw))
        _read_all(task_name, file_set, paths)


def _read_overwritten(task_name: str, name: str, start: int, junk: bytes) -> None:
    """``_read_all`` of the task's valid files with ``junk`` written over file ``name`` at ``start``."""
    with tempfile.TemporaryDirectory() as d:
        file_set, paths = _valid_files(task_name, Path(d))
        raw = bytearray(paths[name].read_bytes())
        raw[start:start + len(junk)] = junk
        paths[name].write_bytes(bytes(raw))
        _read_all(task_name, file_set, paths)


def test_a_damaged_npy_header_is_one_line_of_error():
    """Found by the fuzz test above: numpy's multi-line refusal of a huge .npy header (atlas_topo's npz,
    one byte overwritten) reached the user as a three-line error."""
    _read_overwritten("atlas_topo", "atlas_topo.npz", 67, b"'")


def test_an_hdf5_key_that_is_no_longer_a_dataset_is_a_data_error():
    """Found by the fuzz test above: two bytes overwritten in an ee_gamma file made h5py read its "X" as a
    named datatype, which has no shape (an AttributeError reached the user)."""
    _read_overwritten("ee_gamma", "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5", 815, b"\x00\x00")
