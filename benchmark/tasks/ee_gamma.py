"""ee_gamma: electron vs photon showers in 32x32 crops of the CMS barrel ECAL (energy, hit time).

Real data: two compressed HDF5 files (one per class), ``X`` (N, 32, 32, 2) channels last, ``y``.
Synthetic data: single 50 GeV-pT particles. Photons leave one compact shower unless they convert in
the tracker; electrons radiate bremsstrahlung photons while bending in the 3.8 T field, which smears
their energy along phi. Converted photons and electrons that radiate little overlap, which is why the
best published AUC is ~0.8 and not 1. Image rows are eta and columns phi (an assumption: no public
source says which crop axis is phi, see docs/datasets.md; the generator bends along axis -1).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from benchmark.errors import DataError, one_line
from benchmark.tasks._registry import register_task
from benchmark.tasks.base import (HDF5_ERRORS, FileSet, RawBatch, RealFile, Reference, Sizes, TaskSpec,
                                  check_finite,
                                  check_images, check_keys, check_labels)

SIZE = 32
_CERNBOX = "https://cernbox.cern.ch/remote.php/dav/public-files/{token}/{name}"
ELECTRON_FILE = "SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5"
PHOTON_FILE = "SinglePhotonPt50_IMGCROPS_n249k_RHv1.hdf5"
_FILE_LABEL = {ELECTRON_FILE: 1, PHOTON_FILE: 0}  # each file holds one class
_SCAN_CHUNK = 4096  # samples per read while looking for all-zero crops (~32 MB)

# --- generator constants (energies in GeV, times in ns, positions in crystals) ----------------------
PT = 50.0
ETA_MAX = 1.44            # ECAL barrel
BEND = 0.85               # phi offset (crystals) of a 50 GeV-pT track at the ECAL face
R_TRACKER = 0.85          # outer tracker material, as a fraction of the ECAL radius (1.1 m / 1.29 m)
N_BREM = 4                # bremsstrahlung emissions simulated per electron
CORE, HALO = 0.20, 0.85   # logistic scales (crystals) of the two shower components
HALO_FRACTION = 0.17
NOISE = 0.04              # per-crystal electronics noise (GeV)
THRESHOLD = 0.12          # readout threshold (3 sigma): crystals below it read zero
GENERATOR_VERSION = "ee_gamma-1"


# --- real files ------------------------------------------------------------------------------------

def _unreadable(file: Path, exc: BaseException) -> DataError:
    return DataError(f"{file}: cannot read HDF5 ({one_line(exc)}); the file is missing, truncated or "
                     f"corrupt: delete it and run `bench data fetch ee_gamma`")


class EeGammaReader:
    """Both HDF5 files, electrons then photons, with the all-zero crops dropped.

    The keep-mask comes from one cheap first pass over ``X`` in chunks (which also checks every pixel is
    finite), so ``y`` is known up front and ``batches`` never yields a crop that ``y`` does not count.
    """

    def __init__(self, files: tuple[Path, ...], classes: tuple[int, ...]) -> None:
        import h5py  # lazily: importing the task registry should stay cheap

        self.files = files
        self._keep: list[np.ndarray] = []
        labels = []
        for file, expected in zip(files, classes):
            try:
                with h5py.File(file, "r") as f:
                    check_keys(f.keys(), ("X", "y"), file)
                    X = f["X"]
                    check_images(X, (SIZE, SIZE, 2), file, "X")
                    y = check_labels(f["y"][...], file)
                    if len(y) != len(X):
                        raise DataError(f"{file}: 'y' has {len(y)} labels but 'X' has {len(X)} images")
                    if not (y == expected).all():
                        raise DataError(f"{file}: expected every label to be {expected} (this file holds "
                                        f"one class) but found {int((y != expected).sum())} others")
                    keep = np.empty(len(X), dtype=bool)
                    for start in range(0, len(X), _SCAN_CHUNK):
                        chunk = np.asarray(X[start:start + _SCAN_CHUNK])
                        check_finite(chunk, file, "X", offset=start)
                        keep[start:start + len(chunk)] = chunk.reshape(len(chunk), -1).any(axis=1)
            except HDF5_ERRORS as exc:
                raise _unreadable(file, exc) from None
            self._keep.append(keep)
            labels.append(y[keep])
        self.y = np.concatenate(labels) if labels else np.zeros(0, np.int8)

    def batches(self, size: int) -> Iterator[RawBatch]:
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        import h5py

        for file, keep in zip(self.files, self._keep):
            try:
                with h5py.File(file, "r") as f:
                    X = f["X"]
                    for start in range(0, len(X), size):
                        mask = keep[start:start + size]
                        if not mask.any():
                            continue
                        chunk = np.asarray(X[start:start + size], dtype=np.float32)[mask]
                        images = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))
                        yield RawBatch(images, _aux(images))
            except HDF5_ERRORS as exc:
                raise _unreadable(file, exc) from None


def open_real(file_set: FileSet, paths: Mapping[str, Path]) -> EeGammaReader:
    missing = [f.name for f in file_set.files if f.name not in paths]
    if missing:
        raise DataError(f"ee_gamma: no path given for {missing}; run `bench data fetch ee_gamma`")
    return EeGammaReader(tuple(Path(paths[f.name]) for f in file_set.files),
                         tuple(_FILE_LABEL[f.name] for f in file_set.files))


def _aux(images: np.ndarray) -> np.ndarray:
    return images[:, 0].sum(axis=(1, 2), dtype=np.float64).astype(np.float32)[:, None]


# --- synthetic generator ---------------------------------------------------------------------------

def _deposits(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy (GeV) and phi offset (crystals, relative to the straight line) of each shower component.

    Returns ``(energy, eta, phi)``: energy and phi of shape (n, 1 + N_BREM), eta of shape (n,).
    """
    n = len(y)
    eta = rng.uniform(-ETA_MAX, ETA_MAX, n)
    energy = PT * np.cosh(eta)
    material = 0.4 + 1.4 * (np.abs(eta) / ETA_MAX) ** 2  # tracker material in X0: 0.4 -> 1.8
    charge = rng.choice((-1.0, 1.0), n)
    e = np.zeros((n, 1 + N_BREM))
    phi = np.zeros((n, 1 + N_BREM))

    # Photons: convert with probability 1 - exp(-7/9 x/X0) at a depth ~ truncated exponential; the
    # pair shares the energy ~uniformly and its legs bend in opposite directions from there on.
    rate = 7.0 / 9.0 * material
    p_conv = 1.0 - np.exp(-rate)
    converts = (y == 0) & (rng.random(n) < p_conv)
    depth = -np.log1p(-rng.random(n) * p_conv) / rate  # fraction of the material traversed, 0..1
    s_conv = R_TRACKER * depth
    share = rng.uniform(0.02, 0.98, n)
    lever = (1.0 - s_conv) ** 2
    e[:, 0] = np.where(converts, share, 1.0)
    e[:, 1] = np.where(converts, 1.0 - share, 0.0)
    phi[:, 0] = np.where(converts, charge * BEND * lever / share, 0.0)
    phi[:, 1] = np.where(converts, -charge * BEND * lever / (1.0 - share), 0.0)

    # Electrons: N_BREM emissions at random radii; -ln(kept fraction) ~ Gamma(t / (K ln 2)) per step so
    # the mean kept energy after all of them is exp(-x/X0) (Bethe-Heitler). The track bends with a
    # curvature ~ 1/energy; each photon flies straight from where it was emitted.
    ele = y == 1
    radii = np.sort(rng.uniform(0.0, R_TRACKER, (n, N_BREM)), axis=1)
    kept = np.exp(-rng.gamma(material[:, None] / (N_BREM * np.log(2.0)), 1.0, (n, N_BREM)))
    frac, pos, slope, s = np.ones(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(N_BREM):
        ds = radii[:, k] - s
        curv = 2.0 * BEND * charge / frac
        pos, slope, s = pos + slope * ds + 0.5 * curv * ds**2, slope + curv * ds, radii[:, k]
        e[:, k + 1] = np.where(ele, frac * (1.0 - kept[:, k]), e[:, k + 1])
        phi[:, k + 1] = np.where(ele, pos + slope * (1.0 - s), phi[:, k + 1])
        frac = frac * kept[:, k]
    ds = 1.0 - s
    final = pos + slope * ds + BEND * charge / frac * ds**2
    e[:, 0] = np.where(ele, frac, e[:, 0])
    phi[:, 0] = np.where(ele, final, phi[:, 0])
    # Stochastic energy resolution of the ECAL (2.8 %/sqrt(E)) applied per component.
    e = e * energy[:, None]
    e *= 1.0 + rng.normal(0.0, 1.0, e.shape) * 0.028 / np.sqrt(np.maximum(e, 1.0))
    return e, eta, phi


def _profile(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Fraction of a logistic profile (centre, scale in crystals) in each of the SIZE crystals."""
    edges = np.arange(SIZE + 1, dtype=np.float64)
    cdf = 0.5 * np.tanh((edges - center[..., None]) / (2.0 * scale[..., None]))  # logistic CDF - 1/2
    return np.diff(cdf, axis=-1)


def _render(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(y)
    e, _, phi = _deposits(y, rng)
    # The crop is centred on the most energetic component (the seed crystal lands at index 16).
    main = np.take_along_axis(phi, np.argmax(e, axis=1)[:, None], axis=1)
    phi_c = phi - main + SIZE // 2 + rng.random((n, 1))
    eta_c = np.broadcast_to(SIZE // 2 + rng.random((n, 1)), phi.shape)
    # Shower-to-shower fluctuations of the core width and of the halo fraction.
    core = CORE * np.exp(rng.normal(0.0, 0.12, e.shape))
    halo = np.clip(HALO_FRACTION + rng.normal(0.0, 0.04, e.shape), 0.03, 0.5)
    rows = np.concatenate([_profile(eta_c, core) * (e * (1 - halo))[..., None],
                           _profile(eta_c, np.full_like(core, HALO)) * (e * halo)[..., None]], axis=1)
    cols = np.concatenate([_profile(phi_c, core), _profile(phi_c, np.full_like(core, HALO))], axis=1)
    # Sum over components of outer products; float32 from here on (per-pixel work dominates).
    image = np.matmul(rows.transpose(0, 2, 1).astype(np.float32), cols.astype(np.float32))
    shape = image.shape
    image *= 1.0 + 0.02 * rng.standard_normal(shape, dtype=np.float32)  # crystal calibration spread
    image += NOISE * rng.standard_normal(shape, dtype=np.float32)
    image[np.abs(image) < THRESHOLD] = 0.0
    # Hit times: a common collision time plus a per-crystal jitter that shrinks with energy.
    hit = image != 0
    sigma = np.sqrt((1.2 / np.maximum(np.abs(image), THRESHOLD)) ** 2 + 0.1**2, dtype=np.float32)
    t0 = rng.normal(0.0, 0.15, (n, 1, 1)).astype(np.float32)
    time = t0 + rng.standard_normal(shape, dtype=np.float32) * sigma
    time = np.where(hit, time, np.float32(0.0))
    return np.stack([image, time], axis=1).astype(np.float32)


def generate(y: np.ndarray, rng: np.random.Generator) -> RawBatch:
    """Synthetic crops, one per label (1 = electron), deterministic from ``rng``."""
    y = np.asarray(y)
    chunks = [_render(y[i:i + 8192], rng) for i in range(0, len(y), 8192)]
    X = np.concatenate(chunks) if chunks else np.zeros((0, 2, SIZE, SIZE), np.float32)
    return RawBatch(X, _aux(X))


def preprocess(X: np.ndarray) -> np.ndarray:
    """Identity: energies (GeV) and times (ns) are already O(1-100); the public solutions feed them raw."""
    return np.asarray(X, dtype=np.float32)


# --- summary features ------------------------------------------------------------------------------

FEATURE_NAMES = (
    "e_total", "e_max", "e_3x3", "e_5x5", "max_over_total", "e3x3_over_total", "e5x5_over_total",
    "e3x3_over_e5x5", "strip_phi_over_total", "sigma_eta", "sigma_phi", "sigma_eta_5x5",
    "sigma_phi_5x5", "phi_asymmetry", "n_hits", "time_mean", "time_std",
)


def _seed(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each sample's most energetic crystal (the seed)."""
    return np.divmod(np.argmax(E.reshape(len(E), -1), axis=1), SIZE)


def _window(E: np.ndarray, half: int) -> np.ndarray:
    """The (2 half + 1)^2 crystals around each sample's seed, zero-padded at the crop edge."""
    r, c = _seed(E)
    padded = np.pad(E, ((0, 0), (half, half), (half, half)))
    offs = np.arange(2 * half + 1)
    rows, cols = (r[:, None] + offs)[:, :, None], (c[:, None] + offs)[:, None, :]
    return padded[np.arange(len(E))[:, None, None], rows, cols]


def _widths(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy-weighted RMS along rows (eta) and columns (phi)."""
    total = np.maximum(w.sum(axis=(1, 2)), 1e-9)
    rows = w.sum(axis=2) / total[:, None]
    cols = w.sum(axis=1) / total[:, None]
    idx = np.arange(w.shape[1], dtype=np.float64)
    out = []
    for p in (rows, cols):
        mean = (p * idx).sum(axis=1)
        out.append(np.sqrt(np.maximum((p * idx**2).sum(axis=1) - mean**2, 0.0)))
    return out[0], out[1]


def features(batch: RawBatch) -> np.ndarray:
    """Shower-shape summaries (``FEATURE_NAMES``): containment, widths, phi asymmetry, hits, timing."""
    E = np.maximum(batch.X[:, 0].astype(np.float64), 0.0)
    T = batch.X[:, 1].astype(np.float64)
    total = np.maximum(E.sum(axis=(1, 2)), 1e-9)
    w5 = _window(E, 2)
    e_max, e3, e5 = w5[:, 2, 2], w5[:, 1:4, 1:4].sum(axis=(1, 2)), w5.sum(axis=(1, 2))
    # The 3 eta rows around the seed, over all of phi: catches the bremsstrahlung tails.
    padded = np.pad(E, ((0, 0), (1, 1), (0, 0)))
    band = padded[np.arange(len(E))[:, None], _seed(E)[0][:, None] + np.arange(3)]
    strip = band.sum(axis=(1, 2))
    left, right = w5[:, :, :2].sum(axis=(1, 2)), w5[:, :, 3:].sum(axis=(1, 2))
    s_eta, s_phi = _widths(E)
    s_eta5, s_phi5 = _widths(w5)
    hits = batch.X[:, 0] != 0
    n_hits = hits.sum(axis=(1, 2))
    t_mean = (E * T).sum(axis=(1, 2)) / total
    t_sq = (hits * T**2).sum(axis=(1, 2)) / np.maximum(n_hits, 1)
    t_avg = (hits * T).sum(axis=(1, 2)) / np.maximum(n_hits, 1)
    cols = [total, e_max, e3, e5, e_max / total, e3 / total, e5 / total, e3 / np.maximum(e5, 1e-9),
            strip / total, s_eta, s_phi, s_eta5, s_phi5,
            np.abs(left - right) / np.maximum(left + right, 1e-9),
            n_hits, t_mean, np.sqrt(np.maximum(t_sq - t_avg**2, 0.0))]
    return np.stack(cols, axis=1).astype(np.float32)


def extra_stats(batch: RawBatch, y: np.ndarray) -> dict[str, float]:
    """Shower containment per class: ~80-90 % of a photon's energy in 3x3 crystals (docs/datasets.md)."""
    f = features(batch)
    e3 = f[:, FEATURE_NAMES.index("e3x3_over_total")]
    s_phi = f[:, FEATURE_NAMES.index("sigma_phi_5x5")]
    out = {}
    for label, name in ((0, "photon"), (1, "electron")):
        sel = np.asarray(y) == label
        if sel.any():
            out[f"energy.e3x3_fraction.{name}"] = float(e3[sel].mean())
            out[f"energy.sigma_phi_5x5.{name}"] = float(s_phi[sel].mean())
    out["total_energy.mean"] = float(batch.aux[:, 0].mean()) if len(batch.aux) else 0.0
    return out


SPEC = register_task(TaskSpec(
    name="ee_gamma",
    description="Electron vs photon: 32x32 CMS barrel ECAL crops (energy, time) of 50 GeV-pT particles.",
    image_shape=(2, SIZE, SIZE),
    channel_names=("energy", "time"),
    class_names=("photon", "electron"),
    label_note="1 = electron, 0 = photon, as the `y` of the public files (each file holds one class).",
    aux_names=("total_energy",),
    feature_names=FEATURE_NAMES,
    file_sets=(FileSet(
        name="hdf5",
        files=(
            RealFile(ELECTRON_FILE, _CERNBOX.format(token="FbXw3V4XNyYB3oA", name=ELECTRON_FILE)),  # 83 MB
            RealFile(PHOTON_FILE, _CERNBOX.format(token="AtBT8y4MiQYFcgc", name=PHOTON_FILE)),  # 76 MB
        ),
        how_to_get="`bench data fetch ee_gamma` downloads both files from CERNBox (no checksum is "
                   "published). Older mirrors: shares sHjzCNFTFxutYCj (electrons) and 69nGEZjOy3xGxBq "
                   "(photons), same file names.",
    ),),
    references=(
        Reference("ResNet-15", "auc", 0.81, "ML4Sci end-to-end electron/photon task (docs/datasets.md)"),
        Reference("ResNet-15", "accuracy", 0.74, "ML4Sci end-to-end electron/photon task (docs/datasets.md)"),
    ),
    reference_stats={
        "fraction_label1": "0.5 (249k electrons, 249k photons)",
        "energy.e3x3_fraction.photon": "~0.80-0.90",
    },
    generator_version=GENERATOR_VERSION,
    open_real=open_real,
    generate=generate,
    preprocess=preprocess,
    features=features,
    extra_stats=extra_stats,
    synthetic_sizes=Sizes(20_000, 6_000, 13_000),
))
