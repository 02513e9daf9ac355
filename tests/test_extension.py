"""A task and a model added from outside the package (``$HEPBENCH_PLUGINS``), run by ``bench run`` end
to end through Ray Tune and published on a board: nothing in the package is touched."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from benchmark import records
from benchmark.publish import leaderboard

pytestmark = pytest.mark.slow

PLUGIN = '''
"""A toy task (every pixel of label 1 is shifted by +1) and a toy model (threshold on the pixel mean)."""
import numpy as np

from benchmark.metrics import roc_auc
from benchmark.models import Model, register_model
from benchmark.tasks import RawBatch, Sizes, TaskSpec, register_task


def generate(y, rng):
    X = rng.normal(size=(len(y), 1, 4, 4)).astype(np.float32) + 0.5 * y[:, None, None, None]
    return RawBatch(X, X.mean(axis=(1, 2, 3))[:, None].astype(np.float32))


register_task(TaskSpec(
    name="toy", description="a toy task", image_shape=(1, 4, 4), channel_names=("e",), class_names=("bkg", "sig"),
    label_note="1 = sig", aux_names=("mean",), feature_names=("mean",), file_sets=(), references=(),
    reference_stats={}, generator_version="toy-1", open_real=None, generate=generate, preprocess=lambda X: X,
    features=lambda b: b.X.mean(axis=(1, 2, 3))[:, None].astype(np.float32), synthetic_sizes=Sizes.total(400)))


@register_model
class ToyMean(Model):
    name, kind, default_config, tiny_config = "toy_mean", "classical", {"power": 1.0}, {"power": 1.0}

    def fit(self, train, val, *, report=None):
        if report is not None:
            report(1, {"val_auc": roc_auc(np.asarray(val.y), self.score(val))})

    def score(self, data):
        m = np.asarray(data.X, dtype=np.float64).mean(axis=(1, 2, 3))
        return np.sign(m) * np.abs(m) ** self.config["power"]
'''


def test_a_task_and_a_model_from_a_plugin_run_and_reach_the_board(tmp_path):
    (tmp_path / "toyplugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "toy_mean.yaml").write_text("power: {type: float, low: 0.5, high: 2.0}\n")
    env = {**os.environ, "HEPBENCH_PLUGINS": "toyplugin", "PYTHONPATH": str(tmp_path),
           "BENCH_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--task", "toy", "--model", "toy_mean", "--trials", "3",
           "--source", "synthetic", "--n-train", "280", "--n-val", "60", "--n-test", "60", "--name", "ext", "--space", str(tmp_path / "toy_mean.yaml"),
           "--runs-dir", str(tmp_path / "runs"), "--leaderboard-dir", str(tmp_path / "board")]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    study = tmp_path / "runs" / "ext" / "toy" / "toy_mean"
    result = records.read_result(study)
    assert result.trials == {"completed": 3, "pruned": 0, "failed": 0} and result.scheduler == "none"
    assert result.test.first.auc > 0.8 and 0.5 <= result.best_config["power"] <= 2.0
    assert len(records.read_trials(study)) == 3
    (row,) = leaderboard.load(tmp_path / "board")
    assert (row.task, row.model, row.test_auc) == ("toy", "toy_mean", result.test.first.auc)
    listed = subprocess.run([sys.executable, "-m", "benchmark.cli", "tasks"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "toy " in listed.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmark.cli", "tasks"], capture_output=True, text=True,
                         env={**env, "HEPBENCH_PLUGINS": "no_such_plugin"})
    assert bad.returncode == 2 and "HEPBENCH_PLUGINS: cannot import 'no_such_plugin'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
