"""A regular install (a wheel, as a cluster's container image is built) runs outside the checkout: every
file read at run time ships as package data. The wheel is built from this checkout and installed into a
fresh virtual environment that borrows the installed dependencies (``--system-site-packages`` style, by a
``.pth`` file) but not this project: the package itself comes from the wheel alone."""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _dependency_dirs() -> list[str]:
    """This environment's site-packages, for the new environment's dependencies."""
    return [p for p in site.getsitepackages() if Path(p).is_dir()]


def test_the_wheel_runs_bench_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel = next(dist.glob("hepbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "benchmark/spaces/resnet15.yaml" in names and "benchmark/spaces/quark_gluon/resnet15.yaml" in names

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies from this environment, behind the new one's own packages; not this project's
    # editable finder, which would shadow the wheel
    (Path(purelib) / "deps.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env["BENCH_DATA_DIR"] = str(tmp_path / "data")
    where = subprocess.run([str(python), "-c", "import benchmark, baselines; print(benchmark.__file__)"],
                           cwd=outside, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(purelib) and str(ROOT) not in where  # the wheel's copy, not the checkout
    run = subprocess.run([str(env_dir / "bin" / "bench"), "run", "--task", "hcal_dqm", "--model", "logreg",
                          "--trials", "2", "--n-train", "300", "--n-val", "100", "--n-test", "100",
                          "--cpus-per-trial", "1", "--name", "wheel"],
                         cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (outside / "runs" / "wheel" / "hcal_dqm" / "logreg" / "result.json").is_file()
    assert (outside / "runs" / "leaderboard" / "leaderboard.md").is_file()
