"""atlas_topo: pi0 vs pi+ topo-clusters in the ATLAS barrel calorimeter (ML4Pions-style images).

Each cluster is seen in six calorimeter layers, within a 0.4 x 0.4 (eta, phi) window around the
cluster, at native granularity [eta][phi]: EMB1 (128, 4), EMB2 (16, 16), EMB3 (8, 16),
TileBar0 (4, 4), TileBar1 (4, 4), TileBar2 (2, 4). A pixel is cell energy / cluster energy.

Image models need ONE tensor, so every layer is resampled onto a common 32 (eta) x 16 (phi) grid
(cells of 0.0125 x 0.025). Each layer's energy sum is kept exactly: coarser cells split their value
equally over the sub-cells, and finer cells are summed in groups. Every factor is a power of two,
so the arithmetic is exact too. Why this grid: 32 eta rows are 4x finer than EMB2. Merging
4 EMB1 strips keeps part of the fine strip structure, where pi0 -> gamma gamma shows two peaks.
16 phi columns are the EMB2/EMB3 granularity. Energy preservation keeps the layer energy
fractions (the main discriminant) exact after resampling. The result is ``(6, 32, 16)``, one
channel per layer.

The synthetic generator (vectorised; a fixed-size loop over chunks only bounds memory):

* Particle energy log-uniform in 0.2-2000 GeV, |eta| < 0.7. The layer thicknesses scale with
  cosh(eta).
* pi0: two photons, energy split z ~ U(0, 1), opening angle m / (E sqrt(z(1-z))). So the
  photons are two peaks in the EMB1 strips at a few GeV and merge above ~30 GeV. A photon too far
  from the other makes its own cluster and is dropped. Each photon is an EM shower: a Gamma
  longitudinal profile (t_max = ln(E/Ec) + 0.5 X0) that starts before EMB1 and stays almost
  entirely in EMB1-3.
* pi+: a MIP track until the first nuclear interaction (depth ~ Exp(1) lambda; low-energy pions
  can stop first). Then a shower: an EM part (pi0s inside the shower, fraction f_em as in Wigmans,
  with strong fluctuations) and a hadronic part. The hadronic part is a few broad clumps at
  random depths, seen at ~0.6 of the EM scale (non-compensation), with a large fraction in the
  Tile layers. Charge exchange (pi+ n -> pi0 p) sometimes gives nearly all the energy to one pi0.
  Early interactions and stopping pions make a few pi+ look EM-like, so the task is easy but
  not trivial.
* Cells get sampling fluctuations and electronic noise. A topo-cluster-like selection keeps
  cells above 2 sigma near the shower and above 4 sigma anywhere. Pixel = cell / sum of the kept
  cells.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmark.errors import DataError, one_line
from benchmark.tasks._registry import register_task
from benchmark.tasks.base import (
    NUMPY_ERRORS, FileSet, RawBatch, RealFile, Sizes, TaskSpec, check_finite, check_images, check_keys, check_labels,
)

LAYERS = ("EMB1", "EMB2", "EMB3", "TileBar0", "TileBar1", "TileBar2")
NATIVE_SHAPES = {"EMB1": (128, 4), "EMB2": (16, 16), "EMB3": (8, 16),
                 "TileBar0": (4, 4), "TileBar1": (4, 4), "TileBar2": (2, 4)}
GRID = (32, 16)
SCALARS = ("clusterE", "clusterPt", "clusterEta", "clusterPhi", "cluster_nCells", "cluster_sumCellE")
LABEL = "label"
NPZ_NAME, ROOT_NAME, TREE = "atlas_topo.npz", "atlas_topo.root", "ClusterTree"
CLASSES = ("pi0", "pi+")


# --- the common grid (used by the real readers and the generator alike) ----------------------------

def resample_layer(a: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """``(n, h, w) -> (n, *grid)`` keeping each sample's sum: sum groups of fine cells, split coarse ones."""
    n, h, w = a.shape
    H, W = grid
    if h >= H:
        a = a.reshape(n, H, h // H, w).sum(axis=2)
    else:
        a = np.repeat(a, H // h, axis=1) / (H // h)
    if w >= W:
        a = a.reshape(n, H, W, w // W).sum(axis=3)
    else:
        a = np.repeat(a, W // w, axis=2) / (W // w)
    return a


def to_image(layers: Mapping[str, np.ndarray]) -> np.ndarray:
    """Six native layers ``{name: (n, eta, phi)}`` -> one ``(n, 6, 32, 16)`` float32 image."""
    return np.stack([resample_layer(np.asarray(layers[k], dtype=np.float32)) for k in LAYERS], axis=1)


# --- synthetic generator ---------------------------------------------------------------------------

# Radial depth in interaction lengths at eta = 0: dead material (ID, solenoid, cryostat ~2 X0), EMB1
# 4.3 X0, EMB2 16 X0, EMB3 2 X0 (1 X0 ~ 0.072 lambda in the Pb/LAr accordion), cryostat, Tile A 1.5,
# BC 4.1, D 1.8 lambda. Energy in the dead regions (and beyond the last edge) is lost.
_EDGES = np.array([0.0, 0.144, 0.454, 1.606, 1.75, 2.05, 3.55, 7.65, 9.45])
_LAYER_REGION = np.array([1, 2, 3, 5, 6, 7])  # region index of EMB1..TileBar2
_X0 = 0.072  # lambda per radiation length
_EC = 0.011  # GeV, effective critical energy
_T = np.arange(0.25, 48.0, 0.5)  # EM longitudinal grid, X0
_MIP = 0.25  # GeV per lambda of path (at the EM scale)
_H_RESPONSE = 0.6  # visible fraction of hadronic energy at the EM scale (e/h > 1)
# charge exchange (pi+ n -> pi0 p) share of interactions: large near the Delta resonance, ~10 % at high energy
_P_CHARGE_EXCHANGE = (0.1, 0.4, 2.0)  # p = a + b / (1 + E / c GeV)
_SPLIT = 0.15  # a photon further than this from its partner forms its own cluster
# lateral shower widths per layer (eta and phi, same units): core; a halo 3x wider holds _HALO
_SIGMA = {"em": np.array([0.0035, 0.009, 0.016, 0.03, 0.035, 0.04]),
          "had": np.array([0.025, 0.035, 0.045, 0.055, 0.065, 0.075]),
          "mip": np.full(6, 0.0015)}
_HALO = 0.15
_NOISE = np.array([0.02, 0.035, 0.025, 0.035, 0.035, 0.04])  # GeV per cell
_STOCHASTIC = np.array([0.1, 0.1, 0.1, 0.3, 0.3, 0.3])  # sqrt(GeV): cell sampling fluctuation
_CHUNK = 2048


def generate(y: np.ndarray, rng: np.random.Generator) -> RawBatch:
    """Synthetic clusters, one per label (0 = pi0, 1 = pi+): images ``(n, 6, 32, 16)``, aux (clusterE, clusterEta)."""
    y = np.asarray(y).astype(np.int64)
    X = np.empty((len(y), len(LAYERS), *GRID), dtype=np.float32)
    aux = np.empty((len(y), 2), dtype=np.float32)
    for start in range(0, len(y), _CHUNK):  # bounds memory; each chunk is fully vectorised
        sl = slice(start, start + _CHUNK)
        layers, aux[sl] = _simulate(y[sl], rng)
        X[sl] = to_image(layers)
    return RawBatch(X=X, aux=aux)


def _simulate(y: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = len(y)
    energy = np.exp(rng.uniform(np.log(0.2), np.log(2000.0), size=n))
    eta = rng.uniform(-0.7, 0.7, size=n)
    cosh = np.cosh(eta)[:, None]  # layers are cosh(eta) thicker along the particle's path
    # showers as components: energy (n, k), (eta, phi) position (n, k, 2), share per layer (n, k, 6)
    pi0 = [np.pad(a, [(0, 0), (0, 4)] + [(0, 0)] * (a.ndim - 2)) for a in _pi0_components(energy, cosh, rng)]
    pip = _pip_components(energy, cosh, rng)
    e, pos, w = (np.where((y == 1).reshape(n, *[1] * (a.ndim - 1)), b, a) for a, b in zip(pi0, pip))
    pos = pos + rng.uniform(-0.0125, 0.0125, size=(n, 1, 2))  # axis anywhere in the window's central cell
    sigma = np.concatenate([_SIGMA["em"][None].repeat(2, 0), _SIGMA["had"][None].repeat(3, 0), _SIGMA["mip"][None]])

    true, measured = {}, {}
    groups = ((np.flatnonzero(y == 0), slice(0, 2)), (np.flatnonzero(y == 1), slice(None)))  # pi0: photons only
    for i, name in enumerate(LAYERS):
        true[name] = np.empty((n, *NATIVE_SHAPES[name]))
        for rows, comps in groups:
            true[name][rows] = _deposit(e[rows, comps] * w[rows, comps, i], pos[rows, comps],
                                        sigma[comps, i], NATIVE_SHAPES[name])
        fluct = _STOCHASTIC[i] * np.sqrt(np.maximum(true[name], 0.0)) * rng.standard_normal(true[name].shape)
        measured[name] = true[name] + fluct + _NOISE[i] * rng.standard_normal(true[name].shape)
    layers, cluster_e = _topo_cluster(true, measured)
    return layers, np.stack([cluster_e, eta], axis=1)


def _pi0_components(energy: np.ndarray, cosh: np.ndarray, rng: np.random.Generator):
    """Two photons showering from the front face; the cluster is centred on their barycentre."""
    e, pos = _photon_pair(energy, rng, recentre=True)
    return e, pos, _em_fractions(e, np.zeros_like(e), cosh, rng)


def _pip_components(energy: np.ndarray, cosh: np.ndarray, rng: np.random.Generator):
    """A MIP track to the first interaction, then the shower: 2 photons (its pi0s) + 3 hadronic clumps."""
    n = len(energy)
    depth = rng.exponential(1.0, size=n)  # path length to the first interaction, lambda
    stop = np.minimum(depth, energy / _MIP)  # a low-energy pion ranges out before interacting
    rest = np.where(depth * _MIP < energy, energy - _MIP * stop, 0.0)
    f_em, exchange = _em_fraction(rest, rng)
    em_e, em_pos = _photon_pair(f_em * rest, rng, recentre=False)
    em_pos = em_pos + rng.normal(0.0, 0.01, size=(n, 1, 2))  # the pi0 leaves at an angle to the pion
    em_w = _em_fractions(em_e, np.repeat(depth[:, None], 2, axis=1), cosh, rng)

    share = rng.gamma(1.0, size=(n, 3))  # strongly fluctuating split of the hadronic energy
    share /= share.sum(axis=1, keepdims=True)
    had_e = (_H_RESPONSE * (1.0 - f_em) * rest)[:, None] * share * np.exp(0.2 * rng.standard_normal((n, 3)))
    reach = np.where(exchange, 0.05, 0.45 * np.maximum(rest, 1.0)[:, None] ** 0.1)  # exchange: recoil stops at once
    had_depth = depth[:, None] + rng.gamma(2.0, 1.0, size=(n, 3)) * reach
    had_pos = rng.normal(0.0, 0.03, size=(n, 3, 2))
    had_w = _gauss_fractions(had_depth / cosh, 0.35 / cosh)
    # the track: energy 1, its "shares" are the GeV it leaves per layer (path = radial depth x cosh)
    mip_w = (_MIP * cosh * _track_overlap(stop / cosh[:, 0]))[:, None, :]

    e = np.concatenate([em_e, had_e, np.ones((n, 1))], axis=1)
    pos = np.concatenate([em_pos, had_pos, np.zeros((n, 1, 2))], axis=1)
    return e, pos, np.concatenate([em_w, had_w, mip_w], axis=1)


def _photon_pair(energy: np.ndarray, rng: np.random.Generator, *, recentre: bool):
    """pi0 -> gamma gamma: energies ``(n, 2)`` and (eta, phi) offsets ``(n, 2, 2)`` from the pi0 direction.

    A photon further than ``_SPLIT`` from its partner is another cluster: it is dropped, and with
    ``recentre`` the window is centred on the photon that remains.
    """
    n = len(energy)
    z = rng.uniform(0.0, 1.0, size=n)
    theta = np.minimum(0.135 / (np.maximum(energy, 1e-3) * np.sqrt(np.maximum(z * (1 - z), 1e-6))), 3.0)
    alpha = rng.uniform(0.0, 2 * np.pi, size=n)
    direction = np.stack([np.cos(alpha), np.sin(alpha)], axis=1)
    e = np.stack([z, 1 - z], axis=1) * energy[:, None]
    pos = np.stack([(1 - z)[:, None] * direction, -z[:, None] * direction], axis=1) * theta[:, None, None]
    apart = theta > _SPLIT
    lead = np.argmax(e, axis=1)
    keep = ~apart[:, None] | (np.arange(2)[None, :] == lead[:, None])
    e = e * keep
    if recentre:
        pos = np.where(apart[:, None, None], pos - pos[np.arange(n), lead][:, None, :], pos)
    return e, pos


def _em_fraction(energy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """EM fraction of a hadron shower: Wigmans' mean 1 - (E/0.7 GeV)^-0.18, Beta-distributed.

    Returns (fraction, charge_exchange): in a charge exchange the leading pi0 takes almost everything.
    """
    mean = np.clip(1.0 - (np.maximum(energy, 1e-3) / 0.7) ** -0.18, 0.05, 0.9)
    f = rng.beta(3.0 * mean, 3.0 * (1.0 - mean))
    a, b, c = _P_CHARGE_EXCHANGE
    exchange = rng.random(len(energy)) < a + b / (1.0 + energy / c)
    return np.where(exchange, rng.uniform(0.9, 1.0, size=len(energy)), f), exchange[:, None]


def _em_fractions(energy: np.ndarray, start: np.ndarray, cosh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fraction of each photon shower ``(n, k)`` deposited in each layer ``(n, k, 6)``.

    The photon converts after ~Exp(9/7 X0), then the e+e- pair showers with a Gamma profile in X0
    (t_max = ln(E/Ec) - 0.5). The random conversion depth matters: it lets a pi0 start as late as
    an early-interacting pi+.
    """
    start = start + rng.exponential(9 / 7, size=energy.shape) * _X0
    t_max = np.maximum(np.log(np.maximum(energy, 1e-3) / _EC) - 0.5, 0.3)
    t_max = t_max * np.exp(0.1 * rng.standard_normal(energy.shape))  # shower-to-shower fluctuation
    b = 0.5
    log_pdf = (b * t_max)[..., None] * np.log(b * _T) - b * _T  # (a - 1) log(bt) - bt, a = 1 + b t_max
    pdf = np.exp(log_pdf - log_pdf.max(axis=-1, keepdims=True))
    pdf /= pdf.sum(axis=-1, keepdims=True)
    radial = (start[..., None] + _T * _X0) / cosh[..., None]
    region = np.searchsorted(_EDGES, radial, side="right") - 1
    return np.stack([(pdf * (region == r)).sum(axis=-1) for r in _LAYER_REGION], axis=-1)


def _gauss_fractions(centre: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Fraction of a Gaussian (in radial depth) inside each layer: ``(n, k) -> (n, k, 6)``."""
    lo, hi = _EDGES[_LAYER_REGION], _EDGES[_LAYER_REGION + 1]
    width = np.broadcast_to(width, centre.shape)[..., None]
    return _norm_cdf((hi - centre[..., None]) / width) - _norm_cdf((lo - centre[..., None]) / width)


def _track_overlap(end: np.ndarray) -> np.ndarray:
    """Radial length of the track [0, end] inside each layer: ``(n,) -> (n, 6)``."""
    lo, hi = _EDGES[_LAYER_REGION], _EDGES[_LAYER_REGION + 1]
    return np.clip(np.minimum(end[:, None], hi) - lo, 0.0, None)


def _deposit(energy: np.ndarray, pos: np.ndarray, sigma: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Energy ``(n, k)`` of showers at ``pos`` ``(n, k, 2)``, widths ``(k,)``, shared over a layer's cells."""
    prof_eta = _lateral(pos[:, :, 0], sigma, shape[0])
    prof_phi = _lateral(pos[:, :, 1], sigma, shape[1])
    return np.einsum("nk,nke,nkp->nep", energy.astype(np.float32), prof_eta, prof_phi).astype(np.float64)


def _lateral(centre: np.ndarray, sigma: np.ndarray, n_cells: int) -> np.ndarray:
    """Share of a core + halo Gaussian in each of ``n_cells`` equal cells across the 0.4 window.

    float32: shares only need ~1e-6 precision and this is the generator's hot spot.
    """
    edges = np.linspace(-0.2, 0.2, n_cells + 1, dtype=np.float32)
    centre, sigma = centre.astype(np.float32), sigma.astype(np.float32)
    out = 0.0
    for weight, s in ((1.0 - _HALO, sigma), (_HALO, 3.0 * sigma)):
        cdf = _norm_cdf((edges - centre[..., None]) / s[..., None])
        out = out + weight * np.diff(cdf, axis=-1)
    return out


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), so NumPy alone suffices."""
    z = np.abs(x) * x.dtype.type(1 / np.sqrt(2.0))
    t = 1.0 / (1.0 + x.dtype.type(0.3275911) * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _topo_cluster(true: dict[str, np.ndarray], measured: dict[str, np.ndarray]):
    """Keep cells > 2 sigma near the shower or > 4 sigma anywhere; pixel = cell / cluster energy."""
    kept = {}
    for i, name in enumerate(LAYERS):
        m, s = measured[name], _NOISE[i]
        kept[name] = np.where(((m > 2 * s) & (true[name] > 0.5 * s)) | (m > 4 * s), m, 0.0)
    flat = np.concatenate([kept[k].reshape(len(kept[k]), -1) for k in LAYERS], axis=1)
    empty = flat.sum(axis=1) <= 0
    if empty.any():  # a cluster needs a seed: keep the hottest true cell at its noise level
        all_true = np.concatenate([true[k].reshape(len(true[k]), -1) for k in LAYERS], axis=1)
        seed = np.argmax(all_true[empty], axis=1)
        flat[np.flatnonzero(empty), seed] = np.repeat(_NOISE, [np.prod(NATIVE_SHAPES[k]) for k in LAYERS])[seed]
    cluster_e = flat.sum(axis=1)
    flat = flat / cluster_e[:, None]
    out, start = {}, 0
    for name in LAYERS:
        size = int(np.prod(NATIVE_SHAPES[name]))
        out[name] = flat[:, start:start + size].reshape(-1, *NATIVE_SHAPES[name])
        start += size
    return out, cluster_e


# --- real files ------------------------------------------------------------------------------------

_READ_ERRORS = NUMPY_ERRORS


def _orientation(shapes: Mapping[str, tuple], file: Path) -> bool:
    """True for a legacy (phi, eta) file. EMB1 decides (128 x 4 is not square); every layer must then agree."""
    tail = tuple(shapes["EMB1"][0][1:])
    if tail not in (NATIVE_SHAPES["EMB1"], NATIVE_SHAPES["EMB1"][::-1]):
        raise DataError(f"{file}: 'EMB1' has shape {shapes['EMB1'][0]}, expected (N, 128, 4) "
                        "or the legacy (phi, eta) layout (N, 4, 128)")
    transposed = tail == NATIVE_SHAPES["EMB1"][::-1]
    for name in LAYERS:
        expected = NATIVE_SHAPES[name][::-1] if transposed else NATIVE_SHAPES[name]
        check_images(_header_view(shapes[name]), expected, file, name)
    return transposed


def _header_view(shape_dtype: tuple) -> SimpleNamespace:
    """Shape and dtype alone, enough for ``check_images`` without loading the data."""
    return SimpleNamespace(shape=shape_dtype[0], dtype=shape_dtype[1])


def _check_lengths(shapes: Mapping[str, tuple], file: Path) -> int:
    n = shapes["EMB1"][0][0]
    for key in SCALARS:
        check_images(_header_view(shapes[key]), (), file, key)
    for key, (shape, _) in shapes.items():
        if len(shape) == 0 or shape[0] != n:
            raise DataError(f"{file}: {key!r} has shape {shape} but 'EMB1' has {n} entries; the file is inconsistent")
    return n


class _AtlasReader:
    """Shared part of the npz and ROOT readers: validated labels up front, layers streamed to the grid."""

    files: tuple[Path, ...]
    y: np.ndarray

    def _init(self, path: Path, shapes: Mapping[str, tuple]) -> None:
        self.files = (path,)
        self._transposed = _orientation(shapes, path)
        self._n = _check_lengths(shapes, path)
        self.y = check_labels(self._read([LABEL], 0, self._n)[LABEL], path, LABEL)

    def _read(self, keys: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def batches(self, size: int) -> Iterator[RawBatch]:
        path = self.files[0]
        for start in range(0, self._n, size):
            stop = min(start + size, self._n)
            arrays = self._read([*LAYERS, "clusterE", "clusterEta"], start, stop)
            layers = {}
            for name in LAYERS:
                a = np.asarray(arrays[name], dtype=np.float32)
                check_finite(a, path, name, offset=start)
                layers[name] = a.transpose(0, 2, 1) if self._transposed else a
            aux = np.stack([np.asarray(arrays[k], dtype=np.float32) for k in ("clusterE", "clusterEta")], axis=1)
            check_finite(aux, path, "clusterE/clusterEta", offset=start)
            yield RawBatch(X=to_image(layers), aux=aux)


class AtlasTopoNpzReader(_AtlasReader):
    """A converted ``.npz`` (keys EMB1..TileBar2, cluster scalars, label); shapes are checked from the headers.

    npz members cannot be memory-mapped, so ``batches`` loads each layer once (~3.7 kB per cluster).

    Example:
        >>> reader = AtlasTopoNpzReader(Path("atlas_topo.npz"))  # doctest: +SKIP
        >>> next(reader.batches(512)).X.shape  # doctest: +SKIP
        (512, 6, 32, 16)
    """

    def __init__(self, path: Path):
        self.files = (path,)
        try:
            if not zipfile.is_zipfile(path):  # else numpy would guess "pickle" for any other bytes
                raise DataError(f"{path}: not an .npz (zip) archive: truncated, or another format; "
                                "re-create it from the ROOT ClusterTree or copy it again")
            self._npz = np.load(path, allow_pickle=False)
        except _READ_ERRORS as e:
            raise DataError(f"{path}: not a readable .npz file ({one_line(e, typed=True)}); "
                            "re-create it from the ROOT ClusterTree or copy it again") from None
        check_keys(self._npz.files, (*LAYERS, *SCALARS, LABEL), path)
        self._cache: dict[str, np.ndarray] = {}
        self._init(path, {k: self._header(k) for k in (*LAYERS, *SCALARS, LABEL)})

    def _header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        try:
            with self._npz.zip.open(f"{key}.npy") as f:
                version = np.lib.format.read_magic(f)
                fmt = np.lib.format
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(f)
        except _READ_ERRORS as e:
            raise DataError(f"{self.files[0]}: cannot read the header of {key!r} ({one_line(e, typed=True)}); "
                            "the file looks corrupt, re-create or copy it again") from None
        return tuple(shape), dtype

    def _read(self, keys: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        out = {}
        for key in keys:
            if key not in self._cache:
                try:
                    self._cache[key] = self._npz[key]
                except _READ_ERRORS as e:
                    raise DataError(f"{self.files[0]}: cannot read {key!r} ({one_line(e, typed=True)}); the file "
                                    "looks truncated or corrupt, re-create or copy it again") from None
            out[key] = self._cache[key][start:stop]
        return out

    def batches(self, size: int) -> Iterator[RawBatch]:
        try:
            yield from super().batches(size)
        finally:
            self._cache.clear()  # the layers are big: keep them only while iterating


class AtlasTopoRootReader(_AtlasReader):
    """The ``ClusterTree`` of a ROOT file (branches named like the npz keys), read with uproot in chunks."""

    def __init__(self, path: Path):
        uproot = _import_uproot()
        self.files = (path,)
        try:
            root = uproot.open(path)
            names = {k.split(";")[0] for k in root.keys(recursive=False)}
            if TREE not in names:
                raise DataError(f"{path}: no {TREE!r} tree; found {sorted(names)}")
            self._tree = root[TREE]
            branches, n = self._tree.keys(), self._tree.num_entries
        except DataError:
            raise
        except Exception as e:  # uproot raises many types for damaged files; all mean the same to the user
            raise DataError(f"{path}: not a readable ROOT file ({one_line(e, typed=True, limit=200)}); "
                            "copy it again") from None
        check_keys(branches, (*LAYERS, *SCALARS, LABEL), path)
        first = self._read([*LAYERS, *SCALARS, LABEL], 0, min(n, 1))
        shapes = {k: ((n, *v.shape[1:]), v.dtype) for k, v in first.items()}
        self._init(path, shapes)

    def _read(self, keys: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        import awkward as ak  # comes with uproot

        try:
            arrays = self._tree.arrays(keys, entry_start=start, entry_stop=stop, library="ak")
            return {k: ak.to_numpy(ak.to_regular(arrays[k], axis=None)) for k in keys}
        except Exception as e:
            raise DataError(f"{self.files[0]}: cannot read entries {start}-{stop} of {TREE!r} "
                            f"({one_line(e, typed=True, limit=200)}); the file may be damaged, and jagged branches must have the fixed layer sizes") from None


def _import_uproot():
    try:
        import uproot
    except ImportError:
        raise DataError("reading ROOT files needs uproot: pip install 'hepbench[root]' (or pip install uproot), "
                        "or convert the ClusterTree to atlas_topo.npz") from None
    return uproot


def open_real(file_set: FileSet, paths: Mapping[str, Path]) -> _AtlasReader:
    if file_set.name == "root":
        return AtlasTopoRootReader(Path(paths[ROOT_NAME]))
    return AtlasTopoNpzReader(Path(paths[NPZ_NAME]))


# --- preprocessing, features, statistics ---------------------------------------------------------

def preprocess(X: np.ndarray) -> np.ndarray:
    """Identity: pixels are already energy fractions of order 1."""
    return np.asarray(X, dtype=np.float32)


FEATURE_NAMES = (*(f"frac_{k}" for k in LAYERS), "log10_clusterE", "abs_clusterEta", "depth_centre",
                 "emb1_eta_width", "emb1_n_maxima", "emb2_width", "active_pixels")
_ROW_ETA = (np.arange(GRID[0]) - (GRID[0] - 1) / 2) * (0.4 / GRID[0])
_COL_PHI = (np.arange(GRID[1]) - (GRID[1] - 1) / 2) * (0.4 / GRID[1])


def _layer_fractions(X: np.ndarray) -> np.ndarray:
    sums = X.sum(axis=(2, 3), dtype=np.float64)
    return sums / np.maximum(sums.sum(axis=1, keepdims=True), 1e-12)


def _rms(profile: np.ndarray, coord: np.ndarray) -> np.ndarray:
    w = np.clip(profile, 0.0, None)
    total = np.maximum(w.sum(axis=-1), 1e-12)
    mean = (w * coord).sum(axis=-1) / total
    return np.sqrt(np.clip((w * coord ** 2).sum(axis=-1) / total - mean ** 2, 0.0, None))


def features(batch: RawBatch) -> np.ndarray:
    """Layer fractions (the main discriminant), energy, EMB1 strip shape (two-photon peaks), depth, size."""
    X = batch.X.astype(np.float64)
    frac = _layer_fractions(X)
    emb1 = X[:, 0].sum(axis=2)  # eta profile of the strips (on the 32-row grid)
    padded = np.pad(emb1, ((0, 0), (1, 1)))
    peak = ((padded[:, 1:-1] > padded[:, :-2]) & (padded[:, 1:-1] >= padded[:, 2:])
            & (emb1 > 0.1 * emb1.max(axis=1, keepdims=True)) & (emb1 > 0))
    emb2 = X[:, 1]
    width2 = np.hypot(_rms(emb2.sum(axis=2), _ROW_ETA), _rms(emb2.sum(axis=1), _COL_PHI))
    cols = [*frac.T, np.log10(np.maximum(batch.aux[:, 0], 1e-3)), np.abs(batch.aux[:, 1]),
            frac @ np.arange(len(LAYERS)), _rms(emb1, _ROW_ETA), peak.sum(axis=1), width2,
            (X != 0).sum(axis=(1, 2, 3))]
    return np.stack(cols, axis=1).astype(np.float32)


def extra_stats(batch: RawBatch, y: np.ndarray) -> dict[str, float]:
    """Mean energy fraction in the EM barrel and in the Tile barrel, per class."""
    frac = _layer_fractions(batch.X)
    out: dict[str, float] = {}
    for label, name in enumerate(CLASSES):
        f = frac[np.asarray(y) == label]
        if len(f):
            out[f"{name}.frac_EMB"] = float(f[:, :3].sum(axis=1).mean())
            out[f"{name}.frac_Tile"] = float(f[:, 3:].sum(axis=1).mean())
    return out


_HOW_TO_GET = (
    "Not public: the pi0 / pi+ topo-cluster ntuples (ML4Pions) live on CERN EOS and need an ATLAS "
    "account. Either copy the ROOT file with its 'ClusterTree' (branches EMB1 [128][4], EMB2 [16][16], "
    "EMB3 [8][16], TileBar0/1 [4][4], TileBar2 [2][4] indexed [eta][phi], clusterE, clusterPt, "
    "clusterEta, clusterPhi, cluster_nCells, cluster_sumCellE, and a 'label' branch: 0 = pi0, 1 = pi+) "
    "to the data directory as atlas_topo.root (needs the 'root' extra: uproot), or convert it once to "
    "NumPy, e.g. np.savez('atlas_topo.npz', **uproot.open(f)['ClusterTree'].arrays(library='np')) "
    "after merging the pi0 and pi+ files and adding 'label'. Older converted files in (phi, eta) "
    "order are detected and transposed."
)

SPEC = register_task(TaskSpec(
    name="atlas_topo",
    description="ATLAS barrel topo-clusters, 6 calorimeter layers on a common 32x16 (eta, phi) grid: pi0 vs pi+",
    image_shape=(len(LAYERS), *GRID),
    channel_names=LAYERS,
    class_names=CLASSES,
    label_note="0 = pi0, 1 = pi+",
    aux_names=("clusterE", "clusterEta"),
    feature_names=FEATURE_NAMES,
    file_sets=(
        FileSet("npz", (RealFile(NPZ_NAME, url=None, pattern="*.npz"),), _HOW_TO_GET),
        FileSet("root", (RealFile(ROOT_NAME, url=None, pattern="*.root"),), _HOW_TO_GET),
    ),
    references=(),  # no published benchmark number on these exact files
    reference_stats={
        **{f"{k}.min": ">= 0 (energy fractions)" for k in LAYERS},
        "pi0.frac_EMB": "~1 (almost entirely EMB1-3)",
        "pi+.frac_Tile": "large (late-starting hadronic showers)",
    },
    generator_version="atlas_topo-1",
    open_real=open_real,
    generate=generate,
    preprocess=preprocess,
    features=features,
    extra_stats=extra_stats,
    synthetic_sizes=Sizes(20_000, 4_000, 8_000),
))
