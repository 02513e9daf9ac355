"""What only a CUDA GPU can check: bf16 + channels-last training, the GPU-resident feeder, two trials
packed on one GPU through Ray, XGBoost on the GPU. Skipped cleanly without CUDA; ``make gpu-check``
runs them with ``bench perf``'s throughput rows."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmark.devices import DevicePlan

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _splits(tmp_path, shape=(2, 32, 32)):
    from test_models import make_split

    return make_split(shape, 256, 1, tmp_path), make_split(shape, 128, 2, tmp_path)


def test_bf16_channels_last_training_on_the_gpu_learns_and_is_recorded(tmp_path):
    from benchmark.models import create_model
    from test_models import task_for

    train, val = _splits(tmp_path)
    plan = DevicePlan("cuda:0", 2, 1.0)
    model = create_model("resnet15", task_for((2, 32, 32)), {"width": 8, "epochs": 4, "batch_size": 64, "lr": 3e-3},
                         seed=0, plan=plan)
    assert model.precision == "bf16" and model.channels_last
    model.fit(train, val)
    assert next(model.net.parameters()).is_cuda
    assert model.net.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert max(h["val_auc"] for h in model.result.history) > 0.9
    assert np.isfinite(model.score(val)).all()


def test_a_split_that_fits_the_trials_share_stays_on_the_gpu(tmp_path):
    from benchmark.models.training import Feeder

    train, _ = _splits(tmp_path)
    whole = Feeder(train.X, train.y, batch_size=32, plan=DevicePlan("cuda:0", 1, 1.0), channels_last=True)
    assert whole.on_gpu is not None and whole.on_gpu.is_cuda
    x, y = next(whole.shuffled(np.random.default_rng(0)))
    assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last) and y.is_cuda
    # a share too small for the split: batches come through pinned memory instead
    total = torch.cuda.get_device_properties(0).total_memory
    tiny_share = max(1e-6, whole.nbytes() / total / 8)  # a quarter of it is a 32nd of the split
    streamed = Feeder(train.X, train.y, batch_size=32, plan=DevicePlan("cuda:0", 1, min(1.0, tiny_share)))
    assert streamed.on_gpu is None and next(streamed.ordered())[0].is_cuda


def test_xgboost_trains_on_the_gpu():
    from benchmark.models import create_model
    from test_baselines import _split, _task

    model = create_model("xgboost", _task((2, 32, 32)), {"n_estimators": 20}, plan=DevicePlan("cuda:0", 1, 1.0))
    model.fit(_split(400, 1, (2, 32, 32)), _split(200, 2, (2, 32, 32)))
    assert model._estimator.get_params()["device"].startswith("cuda")
    assert np.isfinite(model.score(_split(100, 3, (2, 32, 32)))).all()


def test_two_trials_packed_on_one_gpu_through_ray(tmp_path):
    space = tmp_path / "tiny.yaml"
    space.write_text("width: {type: fixed, value: 8}\nblocks: {type: fixed, value: 1}\nbatch_size: {type: fixed, value: 64}\n")
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "run", "--task", "ee_gamma", "--model", "resnet15", "--trials", "2",
         "--max-epochs", "2", "--n-train", "1400", "--n-val", "300", "--n-test", "300", "--gpus-per-trial", "0.5", "--cpus-per-trial", "1",
         "--concurrency", "2", "--space", str(space), "--name", "packed", "--runs-dir", str(tmp_path / "runs"),
         "--leaderboard-dir", str(tmp_path / "board")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from benchmark import records

    study = tmp_path / "runs" / "packed" / "ee_gamma" / "resnet15"
    trials = records.read_trials(study)
    assert len(trials) == 2 and all(t.status in ("completed", "pruned") and t.precision == "bf16" for t in trials)
    result = records.read_result(study)
    assert result.device == "cuda" and result.precision == "bf16" and result.resources_per_trial["gpu"] == 0.5
