"""The device plan and the precision setting: resolved once, recorded, deterministic (bf16 on CPU too)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmark import devices
from benchmark.devices import DevicePlan
from benchmark.errors import ConfigError
from benchmark.models import create_model, get_model_class
from test_models import SHAPES, TINY, fit, task_for


def test_auto_is_bf16_exactly_where_the_hardware_has_it(monkeypatch):
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(devices, "cpu_has_bf16", lambda native=native: native)
        assert DevicePlan().precision("auto") == expected
        assert DevicePlan().precision("fp32") == "fp32" and DevicePlan().precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16"):
        DevicePlan().precision("fp16")


def test_the_cpu_probe_agrees_with_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo")
    flags = cpuinfo.read_text().split()
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    assert devices.cpu_has_bf16() == (native and not devices._onednn_capped_below_avx512())


def test_onednn_is_capped_at_avx2_on_amd_avx512_only(monkeypatch):
    for text, capped in (("vendor_id : AuthenticAMD\nflags : fpu avx2 avx512f avx512_bf16", "AVX2"),
                         ("vendor_id : AuthenticAMD\nflags : fpu avx2", None),
                         ("vendor_id : GenuineIntel\nflags : fpu avx2 avx512f amx_bf16", None)):
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        monkeypatch.setattr(devices, "_cpuinfo_words", lambda text=text: frozenset(text.split()))
        devices.cap_onednn_on_amd_avx512()
        assert os.environ.get("ONEDNN_MAX_CPU_ISA") == capped, text
        assert devices._onednn_capped_below_avx512() == (capped is not None)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # the user's own choice is kept
    monkeypatch.setattr(devices, "_cpuinfo_words", lambda: frozenset({"AuthenticAMD", "avx512f"}))
    devices.cap_onednn_on_amd_avx512()
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE" and not devices._onednn_capped_below_avx512()


def test_plan_checks_its_fields():
    with pytest.raises(ValueError, match="device must be"):
        DevicePlan("tpu")
    with pytest.raises(ValueError, match="threads"):
        DevicePlan(threads=0)
    with pytest.raises(ValueError, match="gpu_fraction"):
        DevicePlan("cuda:0", 1, 0.0)
    assert DevicePlan().resident_bytes() == 0 and DevicePlan().kind == "cpu"


def test_a_split_stays_on_the_gpu_by_the_trials_share_not_the_free_memory(monkeypatch):
    import torch

    class Props:
        total_memory = 100 << 30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    half, quarter = DevicePlan("cuda:0", 1, 0.5), DevicePlan("cuda:0", 1, 0.25)
    assert half.resident_bytes() == devices.GPU_RESIDENT_FRACTION * 50 * (1 << 30)
    assert quarter.resident_bytes() * 2 == half.resident_bytes()


def test_precision_is_a_checked_config_key_of_every_neural_model():
    task = task_for(SHAPES["ee_gamma"])
    for name in TINY:
        assert create_model(name, task, TINY[name]).config["precision"] == "auto"
        with pytest.raises(ConfigError, match="precision"):
            create_model(name, task, {**TINY[name], "precision": "half"})
    assert create_model("logreg", task, {}).precision == "native" and not get_model_class("logreg").has_precision()


@pytest.mark.parametrize("name", ["resnet15", "vae"])
def test_bf16_on_cpu_trains_and_is_deterministic(name, tmp_path):
    shape = SHAPES["ee_gamma"]
    model, reports, val = fit(name, shape, tmp_path, precision="bf16", epochs=1)
    assert model.precision == "bf16" and np.isfinite(reports[0][1]["val_auc"])
    scores = model.score(val)
    again, _, _ = fit(name, shape, tmp_path, precision="bf16", epochs=1)
    np.testing.assert_array_equal(again.score(val), scores)
    fp32, _, _ = fit(name, shape, tmp_path, precision="fp32", epochs=1)
    assert not np.array_equal(fp32.score(val), scores)  # bf16 was really used


def test_bf16_autocast_is_used_in_training_and_scoring(tmp_path, monkeypatch):
    import torch

    from benchmark.models import training

    seen = []
    real = training.autocast

    def spy(device, precision):
        seen.append(precision)
        return real(device, precision)

    monkeypatch.setattr(training, "autocast", spy)
    model, _, val = fit("resnet15", SHAPES["ee_gamma"], tmp_path, precision="bf16", epochs=1)
    model.score(val)
    assert set(seen) == {"bf16"} and len(seen) > 3
    with real(torch.device("cpu"), "bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with real(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_memory_format_follows_the_network_and_device():
    task = task_for(SHAPES["ee_gamma"])
    assert create_model("resnet15", task, {}).channels_last is True
    assert create_model("resnet15", task, {"width": 4}).channels_last is False  # oneDNN crashes there
    assert create_model("vit", task, {}).channels_last is False
    gpu = DevicePlan("cuda:0", 1, 1.0)
    assert create_model("vit", task, {}, plan=gpu).channels_last is True  # on CUDA every network


def test_bench_run_precision_is_fixed_in_the_neural_models_spaces_only():
    from benchmark.search import runner
    from benchmark.search.validate import fixed_by_spec
    from benchmark.models import get_model_class
    from benchmark.search_space import load_space

    for precision, expected in (("auto", {}), ("bf16", {"precision": "bf16"})):
        spec = runner.RunSpec(tasks=("ee_gamma",), models=("resnet15",), max_epochs=3, precision=precision)
        for name, fixed in (("resnet15", {"epochs": 3, **expected}), ("logreg", {})):
            cls = get_model_class(name)
            space = load_space(name, None, known_keys=cls.default_config)
            assert fixed_by_spec(spec, cls, space) == fixed
