"""Safe by default: nothing in the package unpickles a file or evaluates YAML tags, checkpoints are
loaded with ``weights_only=True``, and a local Ray starts without its dashboard.

Checked on the source (every call site), so a new unsafe call fails here before it ships.
"""
from __future__ import annotations

import ast
from pathlib import Path

import benchmark

PACKAGE = Path(benchmark.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE.parent / "baselines").rglob("*.py"))


def _calls():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                yield path, node, ast.unparse(node.func)


def _keyword(node: ast.Call, name: str):
    kw = next((k for k in node.keywords if k.arg == name), None)
    return None if kw is None else ast.literal_eval(kw.value) if isinstance(kw.value, ast.Constant) else "?"


def test_no_unsafe_deserialisation():
    unsafe = []
    for path, node, func in _calls():
        where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {func}"
        if func in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
                    "yaml.load", "yaml.unsafe_load", "yaml.full_load", "eval", "exec", "marshal.loads"):
            unsafe.append(where)
        elif func.endswith("torch.load") and _keyword(node, "weights_only") is not True:
            unsafe.append(where + " without weights_only=True")
        elif func in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") not in (None, False):
            unsafe.append(where + " with allow_pickle")
    assert not unsafe, unsafe
    assert SOURCES and any(func == "yaml.safe_load" for _, _, func in _calls())  # the scan sees the loaders


def test_local_ray_starts_without_a_dashboard():
    inits = [node for path, node, func in _calls() if func == "ray.init" and path.name == "session.py"]
    local = [n for n in inits if _keyword(n, "address") in (None, "local")]
    assert local and all(_keyword(n, "include_dashboard") is False for n in local)
