from __future__ import annotations

import optuna
import pytest

from benchmark.errors import ConfigError
from benchmark.search_space import SPACES_DIR, load_space

KEYS = {"lr", "width", "kernel", "gamma", "epochs", "batch_size"}
GOOD = """
lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
width: {type: int, low: 8, high: 64, step: 8}
batch_size: {type: categorical, choices: [32, 64]}
kernel: {type: categorical, choices: [linear, rbf_approx]}
gamma: {type: float, low: 0.01, high: 1.0, log: true, when: {kernel: [rbf_approx]}}
epochs: {type: fixed, value: 5}
"""


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_space_samples_conditionals_and_fixed_values(tmp_path):
    space = load_space("x", _write(tmp_path, GOOD), known_keys=KEYS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_kernels = set()
    for _ in range(30):
        trial = study.ask()
        fixed = space.suggest(trial)
        assert fixed == {"epochs": 5}
        p = trial.params
        assert 1e-4 <= p["lr"] <= 0.1 and p["width"] % 8 == 0 and p["batch_size"] in (32, 64)
        assert ("gamma" in p) == (p["kernel"] == "rbf_approx")  # conditional exists only for its parent value
        seen_kernels.add(p["kernel"])
        study.tell(trial, 0.0)
    assert seen_kernels == {"linear", "rbf_approx"}


def test_with_fixed_overrides(tmp_path):
    space = load_space("x", _write(tmp_path, GOOD), known_keys=KEYS).with_fixed(epochs=9, lr=0.5)
    trial = optuna.create_study().ask()
    assert space.suggest(trial) == {"lr": 0.5, "epochs": 9}


def test_the_first_point_is_the_part_of_a_config_the_space_can_take(tmp_path):
    space = load_space("x", _write(tmp_path, GOOD), known_keys=KEYS)
    defaults = {"lr": 3e-3, "width": 12, "batch_size": 64, "kernel": "poly", "gamma": 0.1, "epochs": 30}
    # width 12 is off the step-8 grid, poly no choice, epochs fixed: left to the sampler and the space
    assert space.point(defaults) == {"lr": 3e-3, "batch_size": 64, "gamma": 0.1}
    study = optuna.create_study()
    study.enqueue_trial(space.point(defaults))
    trial = study.ask()
    space.suggest(trial)
    assert trial.params["lr"] == 3e-3 and trial.params["batch_size"] == 64


def test_every_neural_model_s_defaults_are_its_search_s_first_point():
    """The defaults lie inside the shipped spaces, so each search starts from them (no sampled values)."""
    from benchmark.models import get_model_class

    for name in ("resnet15", "vit", "vae"):
        cls = get_model_class(name)
        space = load_space(name, known_keys=cls.default_config)
        searched = {p.name for p in space.params if p.type != "fixed" and not p.when}
        assert set(space.point(cls.default_config)) == searched - {"beta"}, name


@pytest.mark.parametrize("text, match", [
    ("lr: {type: float, low: 1, high: [\n", r"YAML syntax error"),
    ("- just\n- a list\n", r"expected a mapping"),
    ("", r"expected a mapping"),
    ("depth: {type: int, low: 1, high: 3}\n", r"depth: unknown key"),
    ("lr: {type: float, low: 0.1, high: 0.01}\n", r"lr: low \(0.1\) is greater than high \(0.01\)"),
    ("lr: {type: float, low: 0, high: 1, log: true}\n", r"lr: log scale needs low > 0"),
    ("lr: {type: float, low: a, high: 1}\n", r"lr: 'low' must be a finite number"),
    ("width: {type: int, low: 1.5, high: 3}\n", r"width: 'low' must be an integer"),
    ("lr: {type: gaussian, low: 0, high: 1}\n", r"lr: type must be one of"),
    ("lr: {type: float, low: 0, high: 1, scale: 2}\n", r"lr: unknown field\(s\) \['scale'\]"),
    ("kernel: {type: categorical, choices: []}\n", r"kernel: categorical parameter needs a non-empty list"),
    ("kernel: {type: categorical, choices: [{a: 1}]}\n", r"kernel: choices must be numbers"),
    ("epochs: {type: fixed}\n", r"epochs: fixed parameter needs a 'value'"),
    ("lr: 0.1\n", r"lr: expected a mapping with a 'type'"),
    ("gamma: {type: float, low: 0.1, high: 1, when: {kernel: [rbf_approx]}}\n", r"gamma: 'when' refers to 'kernel'"),
    ("lr: {type: float, low: 0.1, high: 1, step: -1}\n", r"lr: 'step' must be a positive number"),
])
def test_bad_files_name_the_file_the_key_and_the_reason(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as err:
        load_space("x", path, known_keys=KEYS)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="search-space file not found"):
        load_space("x", tmp_path / "nope.yaml")


def test_every_shipped_space_is_valid_for_its_model():
    from benchmark.models import get_model_class, list_models

    names = {m.name for m in list_models()} | {"timm"}
    assert {p.stem for p in SPACES_DIR.glob("*.yaml")} == names  # one file per model, no strays
    board = {f"quark_gluon/{p.stem}": p.stem for p in (SPACES_DIR / "quark_gluon").glob("*.yaml")}
    assert set(board.values()) <= names
    for file, name in {**{n: n for n in names}, **board}.items():
        space = load_space(name, SPACES_DIR / f"{file}.yaml", known_keys=get_model_class(name).default_config)
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
        fixed = space.suggest(trial)
        config = {**trial.params, **fixed}
        assert config and set(config) <= set(get_model_class(name).default_config)


def test_exponents_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 reads ``1e-4`` as a string; the loader takes it as the number users mean."""
    space = load_space("x", _write(tmp_path, "lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"), known_keys=KEYS)
    assert (space.params[0].low, space.params[0].high) == (1e-4, 1e-2)


def test_a_dumped_space_reads_back_as_the_same_space(tmp_path):
    for path in sorted(SPACES_DIR.rglob("*.yaml")):
        space = load_space(path.stem, path).with_fixed(epochs=3)
        space.dump(tmp_path / "space.yaml")
        assert load_space(path.stem, tmp_path / "space.yaml").params == space.params, path
