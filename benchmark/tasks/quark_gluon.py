"""quark_gluon: quark vs gluon jets as 125x125 images (track pT, ECAL, HCAL), CMS Open Data.

Real data: one 26 GB-uncompressed HDF5 file (``X_jets`` channels last) or the same jets as three
parquet files (``X_jets`` nested lists, channels first); both are streamed, never loaded whole.
Synthetic data: jets built from constituents (charged hadrons, photons, neutral hadrons) whose
multiplicity, fragmentation and angular spread depend on the colour factor, plus pile-up and noise,
scatter-added into the three images. Pixel units follow the real files' ranges (docs/datasets.md),
which are not GeV: the unit constants below map GeV onto them.
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

SIZE = 125
TOWER = 5                 # one HCAL tower covers 5x5 ECAL-crystal pixels
PIXEL = 0.0174            # pixel size in eta and phi (one ECAL crystal)
HDF5_FILE = "quark-gluon_data-set_n139306.hdf5"
PARQUET_FILES = tuple(f"QCDToGGQQ_IMGjet_RH1all_jet0_run{i}_n{n}.test.snappy.parquet"
                      for i, n in enumerate((36272, 47540, 55494)))
_CERNBOX = "https://cernbox.cern.ch/remote.php/dav/public-files/oolDBdQegsITFcv/{}"
_GDRIVE_ID = "1WO2K-SfU2dntGU4Bb3IYBp9Rh7rtTYEr"
_KEYS = ("X_jets", "m0", "pt", "y")
GENERATOR_VERSION = "quark_gluon-1"

# --- generator constants -------------------------------------------------------------------------
PT_RANGE = (70.0, 340.0)
N_MAX = 64                     # constituents per jet (padded arrays)
MULT_100 = 14.0                # mean quark-jet constituent multiplicity at pT = 100 GeV
MULT_RATIO = 1.2               # gluon / quark multiplicity (measured ~1.1-1.25, not C_A/C_F = 9/4)
FRAG_SHAPE = {0: 0.55, 1: 0.80}  # Gamma shape of momentum shares: larger = softer, more democratic
WIDTH_PX = {0: 3.6, 1: 4.7}    # angular spread (pixels) at pT = 100 GeV; gluons are broader
BEND_PX = 0.85 * 50.0          # phi bend (pixels) at the ECAL face = BEND_PX / pT[GeV] for |charge| = 1
TRACK_UNIT = 0.05              # file units per GeV (calibrated to the ranges in docs/datasets.md)
ECAL_UNIT = 0.1
HCAL_UNIT = 0.018 / TOWER**2   # a tower's energy is spread over its 25 pixels
ECAL_NOISE = 0.045             # file units; sets the most negative ECAL values (~ -0.22)
ZS_THRESHOLD = 0.15            # ECAL zero suppression (file units, ~3 sigma of the noise)
SR_THRESHOLD = 0.14            # ECAL trigger-tower sum above which all 25 crystals are read out
HCAL_THRESHOLD = 1.3           # GeV per tower
PU_PARTICLES = 100.0           # mean pile-up particles in the 2.2 x 2.2 window
_CHUNK = 256


# --- real files ------------------------------------------------------------------------------------

def _unreadable(file: Path, kind: str, exc: BaseException) -> DataError:
    again = ("download it again by hand (Google Drive id " + _GDRIVE_ID + ")" if kind == "HDF5"
             else "run `bench data fetch quark_gluon`")
    return DataError(f"{file}: cannot read {kind} ({one_line(exc)}); the file is missing, truncated or "
                     f"corrupt: delete it and {again}")


def _aux(pt: np.ndarray, m0: np.ndarray) -> np.ndarray:
    return np.stack([pt, m0], axis=1).astype(np.float32)


def _column(values, file: Path, key: str, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:  # no public source pins (N,) vs (N, 1) for m0 / pt
        values = values[:, 0]
    if values.shape != (n,) or values.dtype.kind not in "fiu":
        raise DataError(f"{file}: {key!r} has shape {values.shape} and dtype {values.dtype}, "
                        f"expected ({n},) numbers")
    if not np.isfinite(values).all():
        raise DataError(f"{file}: {key!r} has NaN or inf values")
    return values.astype(np.float32)


class Hdf5Reader:
    """The single HDF5 file: labels, pt and m0 read up front, images ``size`` jets at a time."""

    def __init__(self, file: Path) -> None:
        import h5py

        self.files = (file,)
        try:
            with h5py.File(file, "r") as f:
                check_keys(f.keys(), _KEYS, file)
                check_images(f["X_jets"], (SIZE, SIZE, 3), file, "X_jets")
                n = len(f["X_jets"])
                self.y = check_labels(f["y"][...], file)
                if len(self.y) != n:
                    raise DataError(f"{file}: 'y' has {len(self.y)} labels but 'X_jets' has {n} jets")
                self._pt = _column(f["pt"][...], file, "pt", n)
                self._m0 = _column(f["m0"][...], file, "m0", n)
        except HDF5_ERRORS as exc:
            raise _unreadable(file, "HDF5", exc) from None

    def batches(self, size: int) -> Iterator[RawBatch]:
        import h5py

        file = self.files[0]
        try:
            with h5py.File(file, "r") as f:
                X = f["X_jets"]
                for start in range(0, len(self.y), size):
                    chunk = np.asarray(X[start:start + size], dtype=np.float32)
                    check_finite(chunk, file, "X_jets", offset=start)
                    images = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))
                    stop = start + len(images)
                    yield RawBatch(images, _aux(self._pt[start:stop], self._m0[start:stop]))
        except HDF5_ERRORS as exc:
            raise _unreadable(file, "HDF5", exc) from None


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading the quark_gluon parquet files needs pyarrow: pip install pyarrow") from None
    return pa, pq


def _nested_to_images(column, file: Path, offset: int) -> np.ndarray:
    """``list<list<list<float>>>`` rows of (3, 125, 125) -> float32 array, without Python loops."""
    pa, _ = _pyarrow()
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    for depth, expected in enumerate((3, SIZE, SIZE)):
        if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
            raise DataError(f"{file}: 'X_jets' has type {column.type}, expected list<list<list<float>>>")
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if arr.null_count or (lengths != expected).any():
            raise DataError(f"{file}: 'X_jets' rows from {offset} are not (3, {SIZE}, {SIZE}) "
                            f"(level {depth} has lengths {np.unique(lengths)[:5].tolist()} or nulls)")
        arr = arr.flatten()
    if not pa.types.is_floating(arr.type) and not pa.types.is_integer(arr.type):
        raise DataError(f"{file}: 'X_jets' holds {arr.type} values, expected numbers")
    values = arr.to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(-1, 3, SIZE, SIZE)


class ParquetReader:
    """The three parquet files in run order; ``X_jets`` streamed with ``ParquetFile.iter_batches``."""

    def __init__(self, files: tuple[Path, ...]) -> None:
        pa, pq = _pyarrow()
        self.files = files
        ys, pts, m0s = [], [], []
        for file in files:
            try:
                pf = pq.ParquetFile(file)
                check_keys(pf.schema_arrow.names, _KEYS, file)
                table = pf.read(columns=["m0", "pt", "y"])
            except (OSError, ValueError, pa.ArrowException) as exc:  # damaged metadata: UnicodeDecodeError too
                raise _unreadable(file, "parquet", exc) from None
            y = check_labels(table.column("y").to_numpy(), file)
            ys.append(y)
            pts.append(_column(table.column("pt").to_numpy(), file, "pt", len(y)))
            m0s.append(_column(table.column("m0").to_numpy(), file, "m0", len(y)))
        self.y = np.concatenate(ys)
        self._pt, self._m0 = np.concatenate(pts), np.concatenate(m0s)
        self._sizes = [len(y) for y in ys]

    def batches(self, size: int) -> Iterator[RawBatch]:
        pa, pq = _pyarrow()
        start = 0
        for file, n in zip(self.files, self._sizes):
            offset = 0
            try:
                for record in pq.ParquetFile(file).iter_batches(batch_size=size, columns=["X_jets"]):
                    images = _nested_to_images(record.column(0), file, offset)
                    check_finite(images, file, "X_jets", offset=offset)
                    stop = start + len(images)
                    yield RawBatch(images, _aux(self._pt[start:stop], self._m0[start:stop]))
                    start, offset = stop, offset + len(images)
            except (OSError, ValueError, pa.ArrowException) as exc:  # damaged metadata: UnicodeDecodeError too
                raise _unreadable(file, "parquet", exc) from None
            if offset != n:
                raise DataError(f"{file}: 'X_jets' has {offset} rows but 'y' has {n}")


def open_real(file_set: FileSet, paths: Mapping[str, Path]):
    missing = [f.name for f in file_set.files if f.name not in paths]
    if missing:
        raise DataError(f"quark_gluon: no path given for {missing}; see `bench data info quark_gluon`")
    files = tuple(Path(paths[f.name]) for f in file_set.files)
    if file_set.name == "hdf5":
        return Hdf5Reader(files[0])
    if file_set.name == "parquet":
        return ParquetReader(files)
    raise DataError(f"quark_gluon: unknown file set {file_set.name!r} (expected 'hdf5' or 'parquet')")


# --- synthetic generator ---------------------------------------------------------------------------

def _jets(y: np.ndarray, rng: np.random.Generator):
    """Constituents of ``len(y)`` jets, padded to N_MAX: pt (GeV), deta/dphi (pixels), kind, charge.

    kind: 0 = charged hadron, 1 = photon, 2 = neutral hadron; padding has pt = 0.
    """
    n = len(y)
    lo, hi = PT_RANGE
    u = rng.random(n)
    pt_jet = 1.0 / np.sqrt(lo**-2 - u * (lo**-2 - hi**-2))  # dN/dpt ~ pt^-3 on [70, 340]
    gluon = y == 1
    # Multiplicity grows slowly with pT; gluons radiate more (Gamma-Poisson for the wide spread).
    mean = MULT_100 * (pt_jet / 100.0) ** 0.25 * np.where(gluon, MULT_RATIO, 1.0)
    mult = np.clip(rng.poisson(mean * rng.gamma(8.0, 1.0 / 8.0, n)), 2, N_MAX)
    present = np.arange(N_MAX)[None, :] < mult[:, None]
    # Momentum shares: normalised Gamma variates; a larger shape gives softer, more equal shares.
    shape = np.where(gluon, FRAG_SHAPE[1], FRAG_SHAPE[0])[:, None]
    share = rng.gamma(np.broadcast_to(shape, (n, N_MAX))) * present
    share /= share.sum(axis=1, keepdims=True)
    pt = share * pt_jet[:, None]
    # Angles: soft constituents spread wider; the whole jet narrows as pT grows.
    width = np.where(gluon, WIDTH_PX[1], WIDTH_PX[0]) * np.sqrt(100.0 / pt_jet) * rng.lognormal(0, 0.25, n)
    spread = width[:, None] * np.clip(share * mult[:, None], 0.02, None) ** -0.35
    deta = rng.normal(0.0, 1.0, (n, N_MAX)) * spread
    dphi = rng.normal(0.0, 1.0, (n, N_MAX)) * spread
    radius = np.hypot(deta, dphi)
    shrink = np.minimum(1.0, 23.0 / np.maximum(radius, 1e-9))  # keep constituents within R = 0.4
    deta, dphi = deta * shrink, dphi * shrink
    # Re-centre on the pT-weighted axis, as jet images are.
    deta -= (pt * deta).sum(axis=1, keepdims=True) / pt_jet[:, None]
    dphi -= (pt * dphi).sum(axis=1, keepdims=True) / pt_jet[:, None]
    kind = rng.choice(3, (n, N_MAX), p=(0.62, 0.27, 0.11))
    charge = np.where(kind == 0, rng.choice((-1.0, 1.0), (n, N_MAX)), 0.0)
    return pt, deta, dphi, kind, charge, present, pt_jet


def _mass(pt: np.ndarray, deta: np.ndarray, dphi: np.ndarray) -> np.ndarray:
    """Invariant mass of massless constituents (the jet axis sits at eta = 0: mass is boost-invariant)."""
    eta, phi = deta * PIXEL, dphi * PIXEL
    e = (pt * np.cosh(eta)).sum(axis=1)
    px, py = (pt * np.cos(phi)).sum(axis=1), (pt * np.sin(phi)).sum(axis=1)
    pz = (pt * np.sinh(eta)).sum(axis=1)
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


_PIX = SIZE * SIZE
# 3x3 lateral spread of an ECAL shower (centre, edges, corners); sums to 1.
_KERNEL = [(dr, dc, 0.70 if dr == dc == 0 else 0.06 if dr == 0 or dc == 0 else 0.015)
           for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
# Pixel offsets of the 25 crystals of a 5x5 tower, relative to its corner.
_TOWER_PIX = (np.arange(TOWER)[:, None] * SIZE + np.arange(TOWER)[None, :]).ravel()


def _sum_at(jet, row, col, value, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Sparse scatter-add: sorted unique flat indices ``jet * size^2 + row * size + col`` and their sums.

    Entries outside the image are dropped. Sparse because a jet lights ~2 % of its pixels.
    """
    ok = (row >= 0) & (row < size) & (col >= 0) & (col < size) & (value != 0)
    flat = (jet[ok] * size + row[ok]) * size + col[ok]
    index, inverse = np.unique(flat, return_inverse=True)
    return index, np.bincount(inverse, weights=value[ok], minlength=len(index))


def _write(out: np.ndarray, channel: int, index: np.ndarray, values: np.ndarray) -> None:
    """Write per-jet flat pixel ``index`` (jet * 125^2 + pixel) into channel ``channel`` of ``out``."""
    jet, pix = np.divmod(index, _PIX)
    out.reshape(-1)[(jet * 3 + channel) * _PIX + pix] = values


def _render(y: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Draw ``len(y)`` jets into the zeroed ``out`` (n, 3, 125, 125); return aux (pt, m0)."""
    n = len(y)
    pt, deta, dphi, kind, charge, present, pt_jet = _jets(y, rng)
    m0 = _mass(pt, deta, dphi)

    # Pile-up: a per-event intensity (broad, like the number of vertices) times soft uniform particles.
    pu = rng.gamma(3.0, 1.0 / 3.0, n)
    n_pu = rng.poisson(PU_PARTICLES * pu)
    pu_jet = np.repeat(np.arange(n), n_pu)
    pu_pt = 0.5 + rng.exponential(0.7, len(pu_jet))
    pu_eta = rng.uniform(-SIZE / 2, SIZE / 2, len(pu_jet))
    pu_phi = rng.uniform(-SIZE / 2, SIZE / 2, len(pu_jet))
    pu_kind = rng.choice(3, len(pu_jet), p=(0.6, 0.3, 0.1))
    pu_charge = np.where(pu_kind == 0, rng.choice((-1.0, 1.0), len(pu_jet)), 0.0)

    jet_idx = np.broadcast_to(np.arange(n)[:, None], pt.shape)[present]
    P = np.concatenate([pt[present], pu_pt])
    J = np.concatenate([jet_idx, pu_jet])
    K = np.concatenate([kind[present], pu_kind])
    Q = np.concatenate([charge[present], pu_charge])
    # Charged particles bend in phi on their way to the calorimeter face.
    ETA = np.concatenate([deta[present], pu_eta])
    PHI = np.concatenate([dphi[present], pu_phi]) + Q * BEND_PX / P
    row = np.floor(ETA + SIZE / 2).astype(np.int64)
    col = np.floor(PHI + SIZE / 2).astype(np.int64)

    charged = K == 0
    index, value = _sum_at(J, row, col, np.where(charged, P * rng.normal(1.0, 0.02, len(P)), 0.0))
    _write(out, 0, index, value * TRACK_UNIT)
    # Energy sharing between the calorimeters: photons all ECAL; hadrons some ECAL, mostly HCAL, with
    # a response below one that fluctuates strongly (non-compensating calorimeter).
    f_ecal = np.where(K == 1, 1.0, rng.uniform(0.0, 0.5, len(P)) * np.where(charged, 1.0, 0.6))
    e_ecal = P * f_ecal * rng.normal(1.0, 0.05, len(P)) * ECAL_UNIT
    e_hcal = P * (1.0 - f_ecal) * np.clip(rng.normal(0.8, 0.25, len(P)), 0.1, None)

    # HCAL: towers below the noise threshold read zero; a tower's energy is spread over its pixels.
    index, value = _sum_at(J, row // TOWER, col // TOWER, e_hcal, SIZE // TOWER)
    keep = value >= HCAL_THRESHOLD
    pixels = _tower_pixels(index[keep])
    _write(out, 2, pixels.ravel(), np.repeat(value[keep] * HCAL_UNIT, TOWER**2))

    # ECAL selective readout: every crystal of a 5x5 trigger tower whose sum passes SR_THRESHOLD is
    # read out (noise included, hence negative values); elsewhere only crystals above ZS_THRESHOLD.
    index, value = _sum_at(np.tile(J, 9), np.concatenate([row + dr for dr, _, _ in _KERNEL]),
                           np.concatenate([col + dc for _, dc, _ in _KERNEL]),
                           np.concatenate([e_ecal * w for _, _, w in _KERNEL]))
    jet, pix = np.divmod(index, _PIX)
    tower = (jet * (SIZE // TOWER) + pix // SIZE // TOWER) * (SIZE // TOWER) + pix % SIZE // TOWER
    tower_sum = np.bincount(tower, weights=value, minlength=n * (SIZE // TOWER) ** 2)
    read = np.concatenate([index[value > ZS_THRESHOLD],
                           _tower_pixels(np.flatnonzero(tower_sum > SR_THRESHOLD)).ravel()])
    read.sort()
    read = read[np.concatenate([[True], read[1:] != read[:-1]])]  # sorted union, as np.union1d
    at = np.minimum(np.searchsorted(index, read), len(index) - 1)
    signal = np.where(index[at] == read, value[at], 0.0) if len(index) else np.zeros(len(read))
    _write(out, 1, read, signal + rng.normal(0.0, ECAL_NOISE, len(read)))
    return _aux(pt_jet, m0)


def _tower_pixels(tower: np.ndarray) -> np.ndarray:
    """Flat pixel indices (jet * 125^2 + pixel) of the 25 crystals of each flat tower index."""
    jet, t = np.divmod(tower, (SIZE // TOWER) ** 2)
    t_row, t_col = np.divmod(t, SIZE // TOWER)
    corner = jet * _PIX + t_row * TOWER * SIZE + t_col * TOWER
    return corner[:, None] + _TOWER_PIX[None, :]


def generate(y: np.ndarray, rng: np.random.Generator) -> RawBatch:
    """Synthetic jet images, one per label (1 = gluon), deterministic from ``rng``."""
    y = np.asarray(y)
    X = np.zeros((len(y), 3, SIZE, SIZE), np.float32)
    aux = np.zeros((len(y), 2), np.float32)
    for i in range(0, len(y), _CHUNK):
        aux[i:i + _CHUNK] = _render(y[i:i + _CHUNK], rng, X[i:i + _CHUNK])
    return RawBatch(X, aux)


def preprocess(X: np.ndarray) -> np.ndarray:
    """As the original training code: zero-suppress values < 1e-3, HCAL x 25, then everything / 100."""
    X = np.asarray(X, dtype=np.float32)
    out = np.where(X < 1e-3, np.float32(0.0), X)
    out[..., 2, :, :] *= 25.0
    out /= 100.0
    return out


# --- summary features ------------------------------------------------------------------------------

FEATURE_NAMES = (
    "pt", "m0", "m0_over_pt",
    "tracks_sum", "ecal_sum", "hcal_sum", "tracks_max", "ecal_max", "hcal_max",
    "n_tracks", "n_ecal", "n_hcal", "n_tracks_core",
    "tracks_ptd", "tracks_girth", "tracks_r2", "ecal_girth", "ecal_r2", "hcal_girth", "all_girth",
)
_R = np.hypot(*np.meshgrid(np.arange(SIZE) - SIZE // 2, np.arange(SIZE) - SIZE // 2, indexing="ij"))
# Radial weights as matrix columns so the moments are one matmul: r, r^2, and inside R = 0.4.
_RADIAL = np.stack([_R, _R**2, _R <= 23], axis=-1).reshape(SIZE * SIZE, 3).astype(np.float32)


def _features_chunk(X: np.ndarray, aux: np.ndarray) -> np.ndarray:
    flat = X.reshape(len(X), 3, SIZE * SIZE)
    W = np.maximum(flat, 0.0)
    sums = W.sum(axis=2, dtype=np.float64)
    safe = np.maximum(sums, 1e-9)
    moments = W @ _RADIAL  # (n, 3, 3): per channel sum of w r, w r^2, w [r <= 0.4]
    girth, r2 = moments[..., 0] / safe, moments[..., 1] / safe
    active = np.count_nonzero(flat, axis=2)
    ptd = np.sqrt(np.square(W[:, 0], dtype=np.float64).sum(axis=1)) / safe[:, 0]
    combined = W[:, 0] + W[:, 1] + W[:, 2] * TOWER**2  # HCAL back to tower energy, as preprocess does
    all_girth = (combined @ _RADIAL[:, 0]) / np.maximum(combined.sum(axis=1, dtype=np.float64), 1e-9)
    core_tracks = (flat[:, 0] > 0).astype(np.float32) @ _RADIAL[:, 2]
    pt, m0 = aux[:, 0].astype(np.float64), aux[:, 1].astype(np.float64)
    cols = [pt, m0, m0 / np.maximum(pt, 1e-9), *sums.T, *flat.max(axis=2).T, *active.T, core_tracks,
            ptd, girth[:, 0], r2[:, 0], girth[:, 1], r2[:, 1], girth[:, 2], all_girth]
    return np.stack(cols, axis=1).astype(np.float32)


def features(batch: RawBatch) -> np.ndarray:
    parts = [_features_chunk(batch.X[i:i + _CHUNK], batch.aux[i:i + _CHUNK])
             for i in range(0, len(batch.X), _CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, len(FEATURE_NAMES)), np.float32)


def extra_stats(batch: RawBatch, y: np.ndarray) -> dict[str, float]:
    """Per-label track-pixel counts and m0: how to check the label convention on the real files."""
    y = np.asarray(y)
    n_tracks = (batch.X[:, 0] != 0).sum(axis=(1, 2))
    n_ecal = (batch.X[:, 1] != 0).sum(axis=(1, 2))
    out = {"pt.min": float(batch.aux[:, 0].min()), "pt.max": float(batch.aux[:, 0].max()),
           "m0.mean": float(batch.aux[:, 1].mean()),
           "ecal.active_pixels.p01": float(np.percentile(n_ecal, 1)),
           "ecal.active_pixels.p99": float(np.percentile(n_ecal, 99))}
    for label in (0, 1):
        sel = y == label
        if sel.any():
            out[f"tracks_pt.active_pixels.label{label}"] = float(n_tracks[sel].mean())
            out[f"m0.mean.label{label}"] = float(batch.aux[sel, 1].mean())
    return out


_CONVENTION = ("if label 1 = gluon, label 1 has more track pixels and larger m0 than label 0; "
               "compare with `bench data info quark_gluon --source real`")

SPEC = register_task(TaskSpec(
    name="quark_gluon",
    description="Quark vs gluon jets: 125x125 images of track pT, ECAL and HCAL energy (CMS Open Data).",
    image_shape=(3, SIZE, SIZE),
    channel_names=("tracks_pt", "ecal", "hcal"),
    class_names=("quark", "gluon"),
    label_note=("1 = gluon, 0 = quark is ASSUMED: the files' y is kept as is, and public sources "
                "disagree on its meaning. Check it on the real data: gluon jets have more non-zero track "
                "pixels and larger m0, so `bench data info quark_gluon --source real` should show "
                "tracks_pt.active_pixels.label1 > label0 and m0.mean.label1 > label0 if 1 = gluon."),
    aux_names=("pt", "m0"),
    feature_names=FEATURE_NAMES,
    file_sets=(
        FileSet(
            name="hdf5",
            files=(RealFile(HDF5_FILE, None),),  # 669 MB
            how_to_get=(f"Hosted on Google Drive (id {_GDRIVE_ID}), which is not fetched automatically: "
                        f"download it in a browser (or `gdown {_GDRIVE_ID}`) and place {HDF5_FILE} in "
                        "<data dir>/quark_gluon/ (data dir: --data-dir, $BENCH_DATA_DIR or "
                        "~/.cache/hepbench). Or use the 'parquet' file set, which `bench data fetch` gets."),
        ),
        FileSet(
            name="parquet",
            files=tuple(RealFile(name, _CERNBOX.format(name)) for name in PARQUET_FILES),
            how_to_get="`bench data fetch quark_gluon` downloads the three parquet files from CERNBox "
                       "(share oolDBdQegsITFcv; no checksum is published).",
        ),
    ),
    references=(
        Reference("EdgeConv", "auc", 0.792, "ML4Sci quark/gluon task (docs/datasets.md)"),
        Reference("EdgeConv", "rej_at_eff50", 8.5,
                  "ML4Sci quark/gluon task, 1/eps_B at eps_S = 0.5 (docs/datasets.md)"),
    ),
    reference_stats={
        "fraction_label1": "~0.5 (balanced)",
        "tracks_pt.zero_fraction": "~0.997",
        "ecal.zero_fraction": "~0.978",
        "hcal.zero_fraction": "~0.978",
        "tracks_pt.min": "0", "tracks_pt.max": "~10",
        "ecal.min": "~-0.22", "ecal.max": "~12.7",
        "hcal.min": "0", "hcal.max": "~0.13",
        "ecal.active_pixels.p01": "~20 (docs/datasets.md: 20-700 active pixels per jet, channel unspecified)",
        "ecal.active_pixels.p99": "~700 (idem)",
        "pt.min": "~70", "pt.max": "~340",
        "tracks_pt.active_pixels.label1": "> label0 if 1 = gluon",
        "m0.mean.label1": "> label0 if 1 = gluon",
    },
    generator_version=GENERATOR_VERSION,
    open_real=open_real,
    generate=generate,
    preprocess=preprocess,
    features=features,
    extra_stats=extra_stats,
    synthetic_sizes=Sizes(8_000, 4_000, 12_000),
))
