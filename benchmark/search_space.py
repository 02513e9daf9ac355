"""Search spaces: one YAML file per model, turned into an Optuna define-by-run function.

Each top-level key is a config key of the model; its value is one of::

    lr:         {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    width:      {type: int, low: 8, high: 64, step: 8}        # or log: true
    batch_size: {type: categorical, choices: [64, 128, 256]}
    epochs:     {type: fixed, value: 20}
    gamma:      {type: float, low: 1.0e-3, high: 1.0, log: true, when: {kernel: [rbf_approx]}}

``when`` makes a parameter conditional: it exists only when every named earlier parameter takes one of
the listed values. Files are validated once, here, with errors that name the file, the key and the
reason; the returned :class:`SearchSpace` is trusted afterwards.
"""
from __future__ import annotations

import math

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError

SPACES_DIR = Path(__file__).resolve().parent / "spaces"  # package data: the wheel ships them
_FIELDS = {
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
    "fixed": {"type", "value", "when"},
}


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    value: Any = None
    when: Mapping[str, tuple] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A validated search space. ``suggest(trial)`` is the define-by-run function for Optuna.

    Example:
        >>> space = load_space("logreg")
        >>> sorted(space.names()) == sorted(space.params_by_name())
        True
    """

    path: Path
    params: tuple[Param, ...]

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def declared(self) -> dict[str, dict[str, Any]]:
        """The space as its YAML declares it: name -> ``{type, low, high, log, step | choices | value, when}``
        (what :func:`load_space` reads back to the same space)."""
        out = {}
        for p in self.params:
            d: dict[str, Any] = {"type": p.type}
            if p.type in ("float", "int"):
                d.update(low=p.low, high=p.high, log=p.log, **({} if p.step is None else {"step": p.step}))
            elif p.type == "categorical":
                d["choices"] = list(p.choices)
            else:
                d["value"] = p.value
            if p.when:
                d["when"] = {k: list(v) for k, v in p.when.items()}
            out[p.name] = d
        return out

    def dump(self, path: Path) -> None:
        """Write :meth:`declared` to ``path`` as YAML (replaced atomically)."""
        from benchmark.files import atomic_write_text

        atomic_write_text(Path(path), f"# the space searched (from {self.path}, with bench run's fixed values)\n"
                          + yaml.safe_dump(self.declared(), sort_keys=False))

    def params_by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    def with_fixed(self, **values: Any) -> SearchSpace:
        """Override parameters with fixed values (e.g. ``epochs`` from ``--max-epochs``); a name the
        space lacks is added as a fixed parameter (e.g. ``precision`` from ``--precision``)."""
        params = tuple(dataclasses.replace(p, type="fixed", value=values[p.name]) if p.name in values else p
                       for p in self.params)
        added = tuple(Param(name, "fixed", value=v) for name, v in values.items() if name not in self.names())
        return dataclasses.replace(self, params=params + added)

    def point(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The searched parameters of ``values`` (e.g. a model's default config) that the space can take
        as they are: what a search evaluates first (Ray Tune's ``points_to_evaluate``)."""
        point = {}
        for p in self.params:
            v = values.get(p.name)
            if p.type == "categorical" and v in p.choices:
                point[p.name] = v
            elif p.type in ("float", "int") and isinstance(v, (int, float)) and not isinstance(v, bool) \
                    and p.low <= v <= p.high and (p.type == "float" or v == int(v)) and \
                    (p.step is None or abs((v - p.low) / p.step - round((v - p.low) / p.step)) < 1e-9):
                point[p.name] = v
        return point

    def suggest(self, trial) -> dict[str, Any]:
        """Sample a config from an ``optuna.Trial``; returns the fixed values (Ray's convention)."""
        config: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        for p in self.params:
            if any(config.get(k, fixed.get(k)) not in allowed for k, allowed in p.when.items()):
                continue
            if p.type == "float":
                config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                config[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
            elif p.type == "categorical":
                config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            else:
                fixed[p.name] = p.value
        return fixed


def space_path(model: str) -> Path:
    return SPACES_DIR / f"{model.split(':', 1)[0]}.yaml"


def load_space(model: str, path: str | Path | None = None, *, known_keys=None) -> SearchSpace:
    """Load and validate the space of ``model`` (or the file ``path``). ``known_keys``: the model's
    config keys; every parameter must be one of them."""
    path = Path(path) if path else space_path(model)
    if not path.is_file():
        raise ConfigError(f"{path}: search-space file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = (str(getattr(e, "problem", None) or e).strip().splitlines() or ["?"])[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    return parse_space(raw, path, known_keys=known_keys)


def parse_space(raw: Any, path: str | Path, *, known_keys=None) -> SearchSpace:
    """Validate a space given as a mapping (a YAML file's content, or :meth:`SearchSpace.declared` as an
    export's metadata keeps it); ``path`` names where it came from in errors."""
    path = Path(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of parameter names to specs, got {type(raw).__name__}")
    params: list[Param] = []
    for name, spec in raw.items():
        params.append(_param(path, str(name), spec, params, known_keys))
    return SearchSpace(path, tuple(params))


def _param(path: Path, name: str, spec: Any, earlier: list[Param], known_keys) -> Param:
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{path}: {name if name.isidentifier() else repr(name)}: {reason}")

    if known_keys is not None and name not in known_keys:
        raise bad(f"unknown key (the model's config keys are {sorted(known_keys)})")
    if not isinstance(spec, dict):
        raise bad(f"expected a mapping with a 'type', got {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise bad(f"type must be one of {sorted(_FIELDS)}, got {kind!r}")
    extra = set(spec) - _FIELDS[kind]
    if extra:
        raise bad(f"unknown field(s) {sorted(extra)} for type {kind}")
    when = _when(spec.get("when", {}), earlier, bad)
    if kind == "fixed":
        if "value" not in spec:
            raise bad("fixed parameter needs a 'value'")
        return Param(name, kind, value=spec["value"], when=when)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("categorical parameter needs a non-empty list of 'choices'")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise bad("choices must be numbers, strings, booleans or null")
        return Param(name, kind, choices=tuple(choices), when=when)
    low, high, log, step = (_yaml_number(spec.get(k, d)) for k, d in (("low", None), ("high", None), ("log", False),
                                                                       ("step", None)))
    for field, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"'{field}' must be a finite number, got {v!r}")
        if kind == "int" and not float(v).is_integer():
            raise bad(f"'{field}' must be an integer for an int parameter, got {v!r}")
    if low > high:
        raise bad(f"low ({low}) is greater than high ({high})")
    if not isinstance(log, bool):
        raise bad(f"'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise bad(f"log scale needs low > 0, got {low}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0
                             or not math.isfinite(step) or (kind == "int" and not float(step).is_integer())):
        raise bad(f"'step' must be a positive {'integer' if kind == 'int' else 'number'}, got {step!r}")
    if step is not None and log:
        raise bad("'step' and 'log' cannot be combined")
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


def _yaml_number(v: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as text: take such a string as the number it spells."""
    if isinstance(v, str):
        try:
            return float(v) if math.isfinite(float(v)) else v
        except ValueError:
            return v
    return v


def _when(when: Any, earlier: list[Param], bad) -> dict[str, tuple]:
    if not isinstance(when, dict):
        raise bad(f"'when' must map earlier parameter names to allowed values, got {when!r}")
    names = {p.name for p in earlier}
    out = {}
    for key, allowed in when.items():
        if key not in names:
            raise bad(f"'when' refers to {key!r}, which is not a parameter defined above it")
        out[key] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
    return out
