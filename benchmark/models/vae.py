"""Convolutional VAE and beta-VAE for anomaly detection: trained on the background class (label 0)
of the training split only, scored by reconstruction error, so they get a ROC like the classifiers.

The network is sized to the task's image: H and W are zero-padded (after standardisation, i.e. with
the channel mean) up to a multiple of ``2**n_down`` and the reconstruction is cropped back, where
``n_down = clip(floor(log2(min(H, W))) - 1, 1, 3)`` stride-2 convolutions (widths ``width, 2*width,
4*width``) lead to ``mu`` / ``logvar`` of size ``latent_dim``; transposed convolutions mirror them.

Everything is measured in standardised units (each channel scaled by its training mean / std), so
channels weigh equally whatever their physical units. Loss per sample: squared error summed over the
pixels + ``beta`` * KL(q(z|x) || N(0, 1)), averaged over the batch; ``vae`` is ``beta = 1``.

Validation, after every epoch: ``val_auc`` on the *full* validation split with score = per-sample mean
squared reconstruction error decoded from the posterior mean (``z = mu``, deterministic); ``val_recon``,
``val_kl`` and ``val_loss`` are the loss terms on the validation background, also at ``z = mu``.

Which class has the larger error depends on the task and the data: a VAE trained on synthetic quark
jets reconstructed the gluon jets *better* (test AUC 0.24 with the error as score). So the
direction is chosen on validation: ``val_auc`` is the AUC of the better orientation of the error and
``val_sign`` (+1 or -1) that orientation; :meth:`VAEModel.score` applies the sign of the best epoch.
The test split is never looked at for this choice.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.metrics import rejections, roc_auc
from benchmark.models._registry import register_model
from benchmark.models.training import TRAIN_DEFAULTS, NeuralModel, Standardize, number


LOGVAR_BOUND = 20.0  # exp(20) ~ 5e8: a variance far beyond anything a standardised input needs


def n_down(hw: tuple[int, int]) -> int:
    return int(np.clip(math.floor(math.log2(min(hw))) - 1, 1, 3))


def _block(conv: nn.Module, c_out: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(c_out), nn.SiLU(inplace=True)]


class ConvVAE(nn.Module):
    """``forward(x) -> (reconstruction, mu, logvar)`` for standardised ``(n, C, H, W)``; ``z`` is
    sampled in training mode and equals ``mu`` in eval mode."""

    def __init__(self, shape: tuple[int, int, int], *, width: int, latent_dim: int) -> None:
        super().__init__()
        C, H, W = shape
        k = n_down((H, W))
        self.hw = (H, W)
        self.padded = (math.ceil(H / 2**k) * 2**k, math.ceil(W / 2**k) * 2**k)
        widths = [width * 2**i for i in range(k)]
        self.bottleneck = (widths[-1], self.padded[0] // 2**k, self.padded[1] // 2**k)
        flat = int(np.prod(self.bottleneck))
        enc: list[nn.Module] = []
        for c_in, c_out in zip([C, *widths[:-1]], widths):
            enc += _block(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), c_out)
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(flat, 2 * latent_dim))
        dec: list[nn.Module] = [nn.Linear(latent_dim, flat), nn.Unflatten(1, self.bottleneck)]
        for c_in, c_out in zip(widths[::-1], [*widths[-2::-1], width]):
            dec += _block(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), c_out)
        self.decoder = nn.Sequential(*dec, nn.Conv2d(width, C, 3, 1, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dh, dw = self.padded[0] - self.hw[0], self.padded[1] - self.hw[1]
        h = self.encoder(F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)))
        mu, logvar = h.float().chunk(2, dim=1)
        # bounded, so exp(logvar) stays finite for inputs far from the training class (a pi+ shower in
        # a Tile layer that pi0 training showers leave nearly empty): no effect on sensible values
        return mu, logvar.clamp(-LOGVAR_BOUND, LOGVAR_BOUND)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        dh, dw = self.padded[0] - self.hw[0], self.padded[1] - self.hw[1]
        out = self.decoder(z)
        return out[:, :, dh // 2:dh // 2 + self.hw[0], dw // 2:dw // 2 + self.hw[1]]

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def _terms(net: Standardize, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample summed squared error and KL divergence, in standardised units."""
    xs = net.standardize(x)
    recon, mu, logvar = net.net(xs)
    se = (recon.float() - xs).square().flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)
    return se, kl


@dataclasses.dataclass(frozen=True)
class VAEObjective:
    """Training loss ``mean(se + beta * kl)``; per-sample outputs ``(mean se, se, kl)``."""

    beta: float
    n_pixels: int

    def loss(self, net: Standardize, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        se, kl = _terms(net, x)
        return (se + self.beta * kl).mean()

    def outputs(self, net: Standardize, x: torch.Tensor) -> torch.Tensor:
        se, kl = _terms(net, x)
        return torch.stack([se / self.n_pixels, se, kl], dim=1)

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        bkg = outputs[y == 0].astype(np.float64)
        recon, kl = float(bkg[:, 1].mean()), float(bkg[:, 2].mean())
        auc = roc_auc(y, outputs[:, 0])
        sign = 1.0 if auc >= 0.5 else -1.0
        return {"val_auc": max(auc, 1.0 - auc), "val_sign": sign, "val_loss": recon + self.beta * kl,
                "val_recon": recon, "val_kl": kl, **rejections(y, sign * outputs[:, 0], "val_")}


@register_model
class VAEModel(NeuralModel):
    """Convolutional VAE (``beta = 1``) on the background class; score = reconstruction error.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("vae", get_task("hcal_dqm"), {"latent_dim": 8})
    """

    name = "vae"
    cpu_channels_last = True  # measured faster on CPU for every task's shape (bench perf, 1d)
    curve_keys = (*NeuralModel.curve_keys, "val_recon", "val_kl")
    artifact_names = ("recon", "latent")
    tiny_config = {"width": 4, "latent_dim": 2, "epochs": 2, "batch_size": 32}
    default_config = {**TRAIN_DEFAULTS, "width": 32, "latent_dim": 16, "transform": "asinh"}
    rules = {"latent_dim": number(int, low=1), "beta": number(float, low=0)}

    @property
    def beta(self) -> float:
        return float(self.config.get("beta", 1.0))

    def build_net(self) -> nn.Module:
        return ConvVAE(self.input_shape, width=self.config["width"], latent_dim=self.config["latent_dim"])

    def objective(self) -> VAEObjective:
        return VAEObjective(self.beta, int(np.prod(self.input_shape)))

    def train_rows(self, train) -> np.ndarray:
        """The background (label 0) rows: read per batch from the prepared arrays, never copied whole."""
        return np.flatnonzero(np.asarray(train.y) == 0)

    def score(self, data) -> np.ndarray:
        """Reconstruction error, times the sign chosen on validation at the best epoch."""
        sign = self.result.history[self.result.best_epoch - 1]["val_sign"] if self.result else 1.0
        return sign * super().score(data)

    def reconstruct(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(viewed, reconstructed)``: the images of ``X`` as the network sees them (after ``crop`` and
        ``pool``, in the data's units) and their reconstructions decoded from ``z = mu``, same shape."""
        viewed = self._predict(X, lambda net, x: net.view(x).float())
        return viewed, self._predict(X, lambda net, x: net.unstandardize(net.net(net.standardize(x))[0].float()))

    def test_metrics(self, test) -> dict[str, float]:
        """``recon_corr``: the Pearson correlation of the pixels of each background test image with its
        reconstruction, in the data's units (as the board draws them), averaged over those images.
        0 means the reconstructions carry nothing of the image (e.g. a constant mean image)."""
        def corr(net, x):
            a = net.view(x).float().flatten(1)
            b = net.unstandardize(net.net(net.standardize(x))[0].float()).flatten(1)
            a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
            return ((a * b).sum(1) / ((a.square().sum(1) * b.square().sum(1)).sqrt() + 1e-30)).view(-1, 1)
        return {"recon_corr": float(np.mean(self._predict(test.X, corr, rows=np.flatnonzero(np.asarray(test.y) == 0))))}

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Posterior means ``mu``, shape ``(n, latent_dim)``."""
        return self._predict(X, lambda net, x: net.net.encode(net.standardize(x))[0])

    def artifacts(self, test) -> dict[str, dict[str, np.ndarray]]:
        """``recon``: four test images of each class and their reconstructions (the board's picture);
        ``latent``: the test split's posterior means and labels (the report's latent map)."""
        y = np.asarray(test.y)
        pick = np.sort(np.concatenate([np.flatnonzero(y == c)[:4] for c in (0, 1)]))
        viewed, reconstructed = self.reconstruct(np.asarray(test.X[pick]))
        mean = {f"mean_{c}": self._predict(test.X, lambda net, x: net.view(x).float(),
                                           rows=np.flatnonzero(y == c)[:500]).mean(0) for c in (0, 1)}
        return {"recon": {"original": viewed, "reconstructed": reconstructed, "y": y[pick], **mean},
                "latent": {"mu": self.encode(test.X).astype(np.float32), "y": y}}


@register_model
class BetaVAEModel(VAEModel):
    """beta-VAE: the VAE with the KL term weighted by ``beta`` (a config key)."""

    name = "beta_vae"
    default_config = {**VAEModel.default_config, "beta": 4.0}
