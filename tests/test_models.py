"""Contract tests for the neural models: every model on every task shape, offline, on CPU, fast.

The data are tiny random images with a learnable signal (label 1 adds a bright blob), stored as
read-only memory maps like the prepared splits, in raw units far from 0 / 1 (standardisation is part
of the model).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data import SplitData
from benchmark.devices import DevicePlan
from benchmark.errors import ConfigError
from benchmark.models import create_model, get_model_class, list_models
from benchmark.models.training import (DivergedError, Feeder, Standardize, TrainResult, convergence, fit_loop,
                                      input_map, viewed_shape)
from benchmark.models.vae import VAEObjective
from benchmark.models.vit import PadTo, Resized, reference_vit_inputs
from benchmark.recipes import RECIPES
from conftest import make_tiny_task

# The four real task shapes; quark_gluon's 3x125x125 is replaced by 3x25x25 in the contract test
# (it is exercised at full size by test_resnet15_at_native_125x125).
SHAPES = {"ee_gamma": (2, 32, 32), "quark_gluon": (3, 25, 25), "hcal_dqm": (1, 64, 72), "atlas_topo": (6, 32, 16)}

TRAIN = {"epochs": 2, "batch_size": 32, "patience": 5, "warmup_epochs": 0.5}
# every registered neural model's own tiny config (training keys from TRAIN), and one timm family member
TINY = {**{cls.name: {k: v for k, v in cls.tiny_config.items() if k not in TRAIN}
           for cls in list_models() if cls.fidelity is not None}, "timm:resnet18": {}}


def task_for(shape):
    return make_tiny_task(image_shape=shape, channel_names=tuple(f"c{i}" for i in range(shape[0])))


def make_split(shape, n, seed, tmp_path, *, amplitude=3.0, nan=False) -> SplitData:
    """Noise around 50 with scale 10; label 1 adds ``amplitude`` * 10 in a 3x3 blob near the centre."""
    rng = np.random.default_rng(seed)
    C, H, W = shape
    y = (np.arange(n) % 2).astype(np.int8)
    X = (50 + 10 * rng.normal(size=(n, C, H, W))).astype(np.float32)
    for i in np.flatnonzero(y):
        r, c = H // 2 + rng.integers(-2, 2), W // 2 + rng.integers(-2, 2)
        X[i, :, r - 1:r + 2, c - 1:c + 2] += 10 * amplitude
    if nan:
        X[2, 0, 0, 0] = np.nan  # a background row: the VAEs train on it too
    path = tmp_path / f"X{seed}.npy"
    np.save(path, X)
    return SplitData(np.load(path, mmap_mode="r"), y, np.zeros((n, 1), np.float32), np.zeros((n, 2), np.float32))


def fit(name, shape, tmp_path, *, seed=0, n=(64, 48), **config):
    task = task_for(shape)
    train, val = make_split(shape, n[0], 1, tmp_path), make_split(shape, n[1], 2, tmp_path)
    model = create_model(name, task, {**TRAIN, **TINY[name], **config}, seed=seed, plan=DevicePlan(threads=1))
    reports = []
    model.fit(train, val, report=lambda epoch, metrics: reports.append((epoch, dict(metrics))))
    return model, reports, val


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("name", list(TINY))
def test_model_contract(name, shape, tmp_path):
    n = (32, 16) if name.startswith("timm:") else (64, 48)  # resnet18 is 11M parameters: keep it short
    model, reports, val = fit(name, shape, tmp_path, n=n)
    assert model.kind == "neural" and model.n_parameters() > 0
    assert [e for e, _ in reports] == [1, 2]
    for _, m in reports:
        assert 0.0 <= m["val_auc"] <= 1.0
        assert np.isfinite(m["train_loss"]) and np.isfinite(m["val_loss"])
    scores = model.score(val)
    assert scores.shape == (len(val),) and scores.dtype.kind == "f" and np.isfinite(scores).all()
    again, _, _ = fit(name, shape, tmp_path, n=n)  # same seed: identical training, identical scores
    np.testing.assert_array_equal(again.score(val), scores)


def test_different_seeds_give_different_models(tmp_path):
    a, _, val = fit("resnet15", SHAPES["ee_gamma"], tmp_path, seed=0, epochs=1)
    b, _, _ = fit("resnet15", SHAPES["ee_gamma"], tmp_path, seed=1, epochs=1)
    assert not np.array_equal(a.score(val), b.score(val))


def test_resnet15_learns_an_easy_signal(tmp_path):
    model, reports, val = fit("resnet15", SHAPES["ee_gamma"], tmp_path, n=(400, 200), epochs=4, width=8, lr=3e-3)
    assert max(m["val_auc"] for _, m in reports) > 0.9
    best = model.result.best_epoch
    assert reports[best - 1][1]["val_auc"] == max(m["val_auc"] for _, m in reports)


def test_resnet15_at_native_125x125(tmp_path):
    model, reports, val = fit("resnet15", (3, 125, 125), tmp_path, n=(32, 16), epochs=1)
    assert [e for e, _ in reports] == [1] and model.score(val).shape == (16,)


def test_vae_trains_on_background_only_and_reconstructs(tmp_path, monkeypatch):
    seen = []
    loss = VAEObjective.loss

    def spy(self, net, x, y):
        seen.append(y.clone())
        return loss(self, net, x, y)

    monkeypatch.setattr(VAEObjective, "loss", spy)
    model, reports, val = fit("beta_vae", SHAPES["atlas_topo"], tmp_path)
    labels = torch.cat(seen)
    assert len(labels) == 2 * 32 and (labels == 0).all()  # 64 training rows, half background, 2 epochs
    assert model.result.n_train == 32
    assert {"val_auc", "val_loss", "val_recon", "val_kl", "train_loss"} <= set(reports[0][1])
    viewed, rec = model.reconstruct(val.X[:5])
    np.testing.assert_allclose(viewed, val.X[:5], rtol=1e-6)  # no crop or pool: the images themselves
    assert rec.shape == val.X[:5].shape and np.isfinite(rec).all()
    assert abs(rec.mean() - 50) < 20  # back in the input's units, not standardised (or asinh) ones
    assert model.encode(val.X[:5]).shape == (5, model.config["latent_dim"])


def test_vae_score_is_reconstruction_error(tmp_path):
    model, _, val = fit("vae", SHAPES["ee_gamma"], tmp_path, epochs=1, transform="none")
    X = np.asarray(val.X)
    expected = ((model.reconstruct(X)[1] - X) / model.net.std.numpy()) ** 2
    sign = model.result.history[model.result.best_epoch - 1]["val_sign"]
    np.testing.assert_allclose(model.score(val), sign * expected.mean(axis=(1, 2, 3)), rtol=1e-3)


def test_input_map_crops_pools_and_inverts_its_transform(tmp_path):
    X = np.abs(np.random.default_rng(0).standard_cauchy(size=(40, 2, 12, 12))).astype(np.float32)
    net = input_map(torch.nn.Identity(), X, np.arange(40), np.random.default_rng(0), crop=0.5, pool=2, asinh=True)
    x = torch.from_numpy(X)
    viewed = net.view(x)
    assert viewed.shape == (40, 2, 3, 3) == (40, *viewed_shape((2, 12, 12), 0.5, 2))
    np.testing.assert_allclose(viewed[:, :, 0, 0], x[:, :, 3:5, 3:5].mean(dim=(2, 3)), rtol=1e-6)  # the centre
    z = net.standardize(x)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 0.05  # heavy tails tamed, then standardised
    np.testing.assert_allclose(net.unstandardize(z), viewed, rtol=1e-4, atol=1e-5)


def test_vae_reconstruction_quality_is_measured_on_background_images(tmp_path):
    model, _, val = fit("vae", SHAPES["hcal_dqm"], tmp_path, epochs=2, pool=2)
    r = model.test_metrics(val)["recon_corr"]
    assert -1.0 <= r <= 1.0
    viewed, rec = model.reconstruct(val.X[:4])
    assert viewed.shape == rec.shape == (4, 1, 32, 36)  # the network's view: pooled by 2
    summary = model.training_summary()
    assert summary["epochs"] == 2 and summary["stop"] in ("patience", "plateau", "max_epochs")


@pytest.mark.parametrize("aucs, patience, expected", [
    ([0.6, 0.7, 0.8, 0.9, 0.95], 5, (False, "max_epochs")),    # still rising at the last epoch
    ([0.6, 0.9, 0.9005, 0.901, 0.9012], 5, (True, "plateau")),  # gained < 0.002 over the last 3
    ([0.6, 0.9, 0.85, 0.84], 2, (True, "patience")),           # early stopping ended it
    ([0.6, 0.7], 5, (False, "max_epochs")),                    # too short to tell
])
def test_convergence_flag(aucs, patience, expected):
    assert convergence(aucs, patience=patience) == expected


@pytest.mark.parametrize("flip", [False, True])
def test_vae_direction_is_chosen_on_validation(flip):
    y = np.r_[np.zeros(50), np.ones(50)]
    error = y + np.random.default_rng(0).normal(size=100)  # label 1 reconstructs worse
    outputs = np.stack([-error if flip else error, error, error], axis=1)  # ...or better, when flipped
    m = VAEObjective(beta=1.0, n_pixels=1).metrics(outputs, y)
    assert m["val_auc"] > 0.7 and m["val_sign"] == (-1.0 if flip else 1.0)


@pytest.mark.parametrize("name", ["resnet15", "vit", "vae"])
def test_nan_in_the_inputs_raises_diverged(name, tmp_path):
    shape = SHAPES["ee_gamma"]
    train, val = make_split(shape, 64, 1, tmp_path, nan=True), make_split(shape, 32, 2, tmp_path)
    model = create_model(name, task_for(shape), {**TRAIN, **TINY[name]}, plan=DevicePlan(threads=1))
    with pytest.raises(DivergedError, match=r"epoch 1, batch 1 .*learning rate"):
        model.fit(train, val)


def test_huge_learning_rate_raises_diverged(tmp_path):
    with pytest.raises(DivergedError, match="lr 1e\\+30"):
        fit("resnet15", SHAPES["ee_gamma"], tmp_path, lr=1e30, grad_clip=0.0)


@pytest.mark.parametrize(("shape", "patch"), [((1, 64, 72), 5), ((2, 32, 32), 7), ((6, 32, 16), 3)])
def test_vit_pads_when_the_patch_size_does_not_divide_the_image(shape, patch, tmp_path):
    model, reports, val = fit("vit", shape, tmp_path, patch_size=patch, epochs=1)
    pad = model.net.net
    assert isinstance(pad, PadTo)
    H, W = shape[1:]
    assert (H + pad.pad[2] + pad.pad[3]) % patch == 0 and (W + pad.pad[0] + pad.pad[1]) % patch == 0
    assert model.score(val).shape == (len(val),)


def test_timm_vit_gets_the_native_size_or_the_reference_resize():
    model = create_model("timm:vit_tiny_patch16_224", task_for((1, 64, 72)), {})
    net = model.build_net()
    assert isinstance(net, PadTo) and net(torch.zeros(2, 1, 64, 72)).shape == (2, 1)
    resized = create_model("timm:vit_tiny_patch16_224", task_for((1, 64, 72)), {"resize": 32}).build_net()
    assert isinstance(resized, Resized) and resized.net.patch_embed.proj.in_channels == 3
    assert resized.net.patch_embed.img_size == (32, 32) and resized(torch.zeros(2, 1, 64, 72)).shape == (2, 1)
    assert "net.pos_embed" in resized.no_weight_decay()


def test_mlp_sees_one_channel_flat():
    model = create_model("mlp", task_for((6, 32, 16)), {"channel": 0, "hidden": "512,512,256"})
    net = model.build_net()
    first = next(m for m in net if isinstance(m, torch.nn.Linear))
    assert first.in_features == 512 and [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [512, 512, 256, 1]
    x = torch.zeros(2, 6, 32, 16)
    x[:, 1:] = torch.randn(2, 5, 32, 16)  # the other channels do not reach the network
    torch.testing.assert_close(net(x), net(torch.zeros(2, 6, 32, 16)))
    assert create_model("mlp", task_for((6, 32, 16)), {"hidden": ""}).build_net()[-1].in_features == 6 * 32 * 16


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_reference_recipe_trains_on_tiny_data_of_its_tasks(recipe, tmp_path):
    r = RECIPES[recipe]
    tasks = [t for t in SHAPES if r.applies_to(t)]
    assert tasks
    for name in tasks:
        shape = SHAPES[name]
        task = make_tiny_task(name=name, image_shape=shape, channel_names=tuple(f"c{i}" for i in range(shape[0])))
        train, val = make_split(shape, 24, 1, tmp_path), make_split(shape, 16, 2, tmp_path)
        model = create_model(r.model, task, {**r.config_for(name), "epochs": 1, "patience": 1}, plan=DevicePlan(threads=1))
        model.fit(train, val)
        assert np.isfinite(model.score(val)).all() and model.training_summary()["epochs"] == 1


def test_recipes_see_quark_gluons_jets_pooled_and_the_other_tasks_images_as_they_are():
    from benchmark.tasks import get_task

    for name in ("e2e-resnet15", "ae-vae-lr1e-3", "ae-vae-lr3e-4"):
        r = RECIPES[name]
        assert create_model(r.model, get_task("quark_gluon"), r.config_for("quark_gluon")).input_shape == (3, 62, 62)
        assert r.config_for("ee_gamma") == dict(r.config) and "pool" not in r.config


@pytest.mark.parametrize(("name", "config", "match"), [
    ("resnet15", {"no_such_key": 1}, "unknown config key"),
    ("vae", {"beta": 2.0}, "unknown config key"),  # beta is fixed to 1 for the plain VAE
    ("resnet15", {"lr": -1.0}, "'lr' must be > 0"),
    ("resnet15", {"batch_size": 3.5}, "'batch_size' must be an integer"),
    ("vit", {"embed_dim": 100, "num_heads": 3}, "not a multiple of num_heads"),
    ("timm:not_a_timm_model", {}, "unknown timm model"),
    ("mlp", {"hidden": "512,x"}, "comma-separated positive widths"),
    ("mlp", {"channel": 2}, "out of range"),
])
def test_bad_configs_raise_config_error(name, config, match):
    with pytest.raises(ConfigError, match=match):
        create_model(name, task_for((2, 32, 32)), config)


def test_registry_and_shared_config_keys():
    names = {cls.name for cls in list_models()}
    assert {"resnet15", "vit", "vae", "beta_vae"} <= names and "timm" not in names
    assert get_model_class("timm:resnet18").name == "timm"
    shared = {"lr", "weight_decay", "batch_size", "epochs", "patience", "warmup_epochs", "grad_clip"}
    for name in ("resnet15", "vit", "vae", "beta_vae", "timm"):
        assert shared <= set(get_model_class(name).default_config)


def test_feeder_batches_cover_every_row_once(tmp_path):
    X = np.arange(103, dtype=np.float32).reshape(103, 1, 1, 1)
    rows = np.arange(3, 103, 2)
    feed = Feeder(X, np.zeros(103), batch_size=16, plan=DevicePlan(), rows=rows)
    batches = [x.view(-1).numpy() for x, _ in feed.shuffled(np.random.default_rng(0))]
    assert len(batches) == 4 and all(8 <= len(b) <= 16 for b in batches)
    assert all((np.diff(b) > 0).all() for b in batches)  # sorted indices into the memmap
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), rows)
    np.testing.assert_array_equal(np.concatenate([x.view(-1).numpy() for x, _ in feed.ordered()]), rows)


class _Scripted:
    """An objective whose validation AUC follows a script, to test early stopping and restoring."""

    def __init__(self, aucs):
        self.aucs = list(aucs)

    def loss(self, net, x, y):
        return net(x).square().mean()

    def outputs(self, net, x):
        return net(x).view(-1, 1)

    def metrics(self, outputs, y):
        return {"val_auc": self.aucs.pop(0), "val_loss": 0.0}


def test_early_stopping_restores_the_best_epoch(tmp_path):
    shape = (1, 4, 4)
    train, val = make_split(shape, 32, 1, tmp_path), make_split(shape, 16, 2, tmp_path)
    torch.manual_seed(0)
    net = Standardize(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1)), np.zeros(1), np.ones(1))
    snapshots = []
    config = {**TRAIN, "epochs": 10, "patience": 2, "lr": 0.1, "weight_decay": 0.0, "grad_clip": 1.0}
    result = fit_loop(net, _Scripted([0.6, 0.8, 0.7, 0.75, 0.9]), train, val, config=config,
                      plan=DevicePlan(), rng=np.random.default_rng(0),
                      report=lambda e, m: snapshots.append(net.net[1].weight.detach().clone()))
    assert isinstance(result, TrainResult)
    assert [m["val_auc"] for m in result.history] == [0.6, 0.8, 0.7, 0.75]  # stopped: 2 epochs without gain
    assert result.best_epoch == 2 and result.history[result.best_epoch - 1]["val_auc"] == 0.8
    torch.testing.assert_close(net.net[1].weight, snapshots[1])


def test_reference_vit_inputs_resize_and_force_three_channels():
    assert reference_vit_inputs(np.zeros((2, 1, 64, 72), np.float32)).shape == (2, 3, 224, 224)
    x = np.random.default_rng(0).normal(size=(2, 6, 32, 16)).astype(np.float32)
    out = reference_vit_inputs(x, size=32)
    assert out.shape == (2, 3, 32, 32)
    two = reference_vit_inputs(x[:, :2], size=32)
    torch.testing.assert_close(two[:, 2], two[:, 0])  # 2 channels -> (0, 1, 0)
