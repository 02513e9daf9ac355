"""What a ``bench run`` is, as a typed value: :class:`RunSpec`, built by the command line or by a library
caller (``RunSpec.from_protocol`` for a published-board preset), and the checks of its names, addresses and
storage locations that need nothing but the text. ``benchmark.search.validate.check`` checks the rest.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

from benchmark import data
from benchmark.errors import BenchError


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A typed ``bench run``: built from the command line in ``benchmark.cli``, trusted here."""

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    trials: int = 20
    sampler: str = "tpe"
    scheduler: str = "asha"
    max_epochs: int = 10
    precision: str = "auto"  # the neural models' config key ``precision`` (benchmark.devices)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    source: str = "auto"
    sizes: data.Sizes = data.Sizes()  # rows per split (None: the task's default; real files: train only)
    seed: int = 0
    sampler_seed: int | None = None  # the sampler's own seed (None: ``seed``, which also fixes data and training)
    train_seed: int | None = None  # the trials' training seed alone (None: ``seed``): seed repeats on the same data
    points: tuple[Mapping[str, object], ...] = ()  # configs the search evaluates first (None: the model's defaults)
    fixed: Mapping[str, object] = dataclasses.field(default_factory=dict)  # --fix KEY=VALUE: fixed in each space
    costs: bool = False  # measure every trial's parameters, FLOPs and latency (benchmark.costs)
    name: str = ""
    resume: bool = False
    repeats: int = 1
    address: str | None = None
    storage: str | None = None  # Tune's storage_path (a shared path or URI); None: the study dir on the driver
    data_root: Path = Path(".")
    runs_dir: Path = Path("runs")
    spaces: Mapping[str, str] = dataclasses.field(default_factory=dict)
    recipes: tuple[str, ...] = ()  # reference recipes (benchmark.recipes) to run after the searches
    protocol: str | None = None    # the board protocol this spec was made from (benchmark.protocol)
    verbose: bool = False
    argv: tuple[str, ...] = ()

    @property
    def trial_seed(self) -> int:
        """The seed every trial trains with (weights, batches, dropout)."""
        return self.seed if self.train_seed is None else self.train_seed

    #: The fields a protocol's preset fixes (the command line's options of the same names may not be given).
    PRESET_FIELDS = ("models", "trials", "max_epochs", "sizes", "repeats", "sampler", "scheduler", "spaces", "recipes")

    @classmethod
    def from_protocol(cls, protocol: str, task: str, **rest) -> RunSpec:
        """The spec of one task's preset of ``protocol`` (``benchmark.protocol``), the other fields from
        ``rest`` (name, seed, resources, directories, ...); a field the preset fixes may not be in ``rest``."""
        from benchmark import protocol as protocols
        from benchmark.models import list_models
        from benchmark.search_space import SPACES_DIR

        fixed = [f for f in cls.PRESET_FIELDS if f in rest]
        if fixed:
            raise BenchError(f"protocol {protocol} fixes {fixed[0]}: leave it out (see benchmark/protocol.py)")
        p = protocols.preset(protocol, task)
        return cls(tasks=(task,), models=tuple(m.name for m in list_models() if m.on_board), trials=p.trials,
                   max_epochs=p.max_epochs, sizes=data.Sizes(train=p.n_train), repeats=p.repeats, sampler=p.sampler,
                   scheduler=p.scheduler, recipes=tuple(p.recipes),
                   spaces={m: str(SPACES_DIR / f) for m, f in p.spaces.items()}, protocol=protocol, **rest)


def experiment_name(spec: RunSpec, task: str, model: str) -> str:
    """Tune's experiment name of a search under a shared ``--storage``: one per (run, task, model)."""
    return f"{spec.name}-{task}-{model.replace(':', '_')}"


#: Seeds numpy's RandomState (Optuna's samplers, scikit-learn) takes: [0, 2**32).
MAX_SEED = 2**32 - 1


def run_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a run's directory inside ``--runs-dir`` (one name, not a path,
    nothing a file system or a terminal mangles, room for Tune's experiment suffixes), or None."""
    import unicodedata

    if not name.strip():
        return "empty: pass a name, or leave --name out for a timestamp"
    if name in (".", "..") or "/" in name or (os.altsep and os.altsep in name):
        return f"{name!r} is a path, not a name: the run goes to RUNS_DIR/NAME (pass --runs-dir for another place)"
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cs")]
    if bad:
        return f"{name[:60]!r} contains the character {bad[0]!r}: use letters, digits, '-', '_' or '.'"
    if len(name.encode("utf-8", "surrogateescape")) > 200:
        return f"of {len(name.encode('utf-8', 'surrogateescape'))} bytes (at most 200)"
    return None


STORAGE_SCHEMES = ("file", "local", "mock", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")  # pyarrow's


def storage_problem(storage: str) -> str | None:
    """What is wrong with ``storage`` as Ray Tune's storage path (a URI of a file system pyarrow knows,
    or an absolute path), or None."""
    import unicodedata

    if "://" not in storage:
        return None if os.path.isabs(storage) else "a URI or an absolute path"
    scheme, rest = storage.split("://", 1)
    if scheme not in STORAGE_SCHEMES:
        return f"unknown scheme {scheme!r}; Ray Tune knows {', '.join(s + '://' for s in STORAGE_SCHEMES)} and local paths"
    if any(c.isspace() or unicodedata.category(c).startswith("C") or ord(c) > 127 for c in rest) or \
            re.search(r"%(?![0-9A-Fa-f]{2})", rest):
        return "not a valid URI (percent-encode spaces, non-ASCII and control characters)"
    if scheme in ("file", "local") and not rest.startswith("/"):
        return f"a {scheme}:// URI needs an absolute path ({scheme}:///dir), or pass the path itself"
    if scheme not in ("file", "local", "mock") and not rest.split("/", 1)[0]:
        return f"no bucket or host after {scheme}://"
    return None


def parse_address(address: str, label: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IP, ``[IPv6]`` or a host name; port 1-65535) as (host, port); anything else,
    and Ray Client's ``ray://``, a one-line BenchError."""
    import ipaddress

    if address.startswith("ray://"):  # Tune would run its driver on the head, away from the run directory
        raise BenchError(f"{label} {address}: Ray Client (ray://) runs Tune's driver on the head node, where this "
                         f"machine's run directory is not; run `bench run --address HOST:6379` on a machine of the "
                         f"cluster, or `ray job submit -- bench run ...` (README: Scaling out)")
    parsed = re.fullmatch(r"(\[[^]]+\]|[^:/\[\]]+):([0-9]{1,5})", address)
    if parsed is None or not 1 <= int(parsed[2]) <= 65535:
        raise BenchError(f"{label} {address!r}: expected auto or HOST:PORT with a port from 1 to 65535 "
                         "(the head's GCS port, 6379 by default)")
    host = parsed[1]
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        label_re = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
        if host.startswith("[") or len(host) > 253 or not all(
                re.fullmatch(label_re, part) for part in host.removesuffix(".").split(".")):
            raise BenchError(f"{label} {address!r}: {host!r} is neither an IP address nor a host name "
                             "(letters, digits and '-' between dots; IDN as punycode)") from None
    return host.strip("[]"), int(parsed[2])
