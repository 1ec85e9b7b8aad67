"""Synthetic chest-CT phantoms with lung tumours, deterministic from a seed.

A phantom is a CT volume in Hounsfield units with the structures that make lung tumour segmentation hard:
body outline with a fat rim, ribs and spine (bone), mediastinum and heart (soft tissue), two lungs (~ -850 HU)
with vessels (soft-tissue tubes inside the lungs: the hard negatives) and airways, partial-volume blur and noise,
and lobulated soft-tissue tumours, some fully inside the lung, some touching the chest wall or the mediastinum
(juxtapleural: hard to separate from the wall by intensity).

Geometry is physical: the default volume is ``(z, y, x) = (64, 96, 96)`` voxels of ``(x, y, z) = (3.5, 3.5, 4)`` mm,
a 34 cm wide, 26 cm long chest, small enough for CPU work (tests use smaller volumes). Tumour sizes are physical too: equivalent diameters
are drawn from a log-normal fitted to the MSD-Lung row of Table 1 of the mixed-supervision paper
(37.6 ± 20.1 mm), truncated to ``[min_diameter_mm, max_diameter_mm]``.

Arrays are in SimpleITK order ``(z, y, x)``; spacings are given as ``(x, y, z)`` like ``SimpleITK.GetSpacing()``.
Rows (y) run anterior to posterior, so the spine is at large y.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from enum import IntEnum

import numpy as np
from scipy import ndimage

from nnunet_kd.errors import ConfigurationError

# Log-normal fitted to MSD-Lung tumour diameters (Fredriksen et al. 2022, Table 1: 37.63 ± 20.08 mm):
# sigma^2 = ln(1 + sd^2 / mean^2), mu = ln(mean) - sigma^2 / 2.
MSD_DIAMETER_MEAN_MM = 37.63
MSD_DIAMETER_SD_MM = 20.08

PLACEMENTS = ("intrapulmonary", "juxtapleural", "juxtamediastinal")


class Tissue(IntEnum):
    """Codes of the noise-free tissue map (:attr:`Phantom.tissues`)."""

    AIR = 0
    FAT = 1
    SOFT_TISSUE = 2
    LUNG = 3
    VESSEL = 4
    AIRWAY = 5
    BONE = 6
    HEART = 7
    TUMOUR = 8


#: Nominal HU per tissue before blur and noise (bone: cortical value; marrow uses ``BONE_MARROW_HU``).
TISSUE_HU = {
    Tissue.AIR: -1000.0,
    Tissue.FAT: -100.0,
    Tissue.SOFT_TISSUE: 40.0,
    Tissue.LUNG: -850.0,
    Tissue.VESSEL: 40.0,
    Tissue.AIRWAY: -1000.0,
    Tissue.BONE: 700.0,
    Tissue.HEART: 45.0,
}
TUMOUR_HU_RANGE = (30.0, 60.0)


@dataclass(frozen=True)
class PhantomConfig:
    """What a phantom looks like. Every field is validated by :meth:`validate`.

    Attributes:
        shape_zyx: volume size in voxels, ``(z, y, x)``.
        spacing_xyz: voxel size in mm, ``(x, y, z)``.
        diameter_mean_mm, diameter_sd_mm: mean and standard deviation of the log-normal tumour diameter.
        min_diameter_mm, max_diameter_mm: truncation of the diameter distribution.
        tumours_per_case: inclusive range of the number of tumours per case.
        placement_probabilities: probability of each placement in :data:`PLACEMENTS` order.
        noise_sd_hu: standard deviation of the Gaussian noise.
        blur_sigma_voxels: partial-volume blur before the noise.
        vessels_per_lung: number of vessel trees per lung.
    """

    shape_zyx: tuple[int, int, int] = (64, 96, 96)
    spacing_xyz: tuple[float, float, float] = (3.5, 3.5, 4.0)
    diameter_mean_mm: float = MSD_DIAMETER_MEAN_MM
    diameter_sd_mm: float = MSD_DIAMETER_SD_MM
    min_diameter_mm: float = 14.0
    max_diameter_mm: float = 60.0
    tumours_per_case: tuple[int, int] = (1, 2)
    placement_probabilities: tuple[float, float, float] = (0.5, 0.35, 0.15)
    noise_sd_hu: float = 15.0
    blur_sigma_voxels: float = 0.5
    vessels_per_lung: int = 6

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return (self.spacing_xyz[2], self.spacing_xyz[1], self.spacing_xyz[0])

    def lognormal_parameters(self) -> tuple[float, float]:
        """``(mu, sigma)`` of the log-normal whose mean and sd are the configured diameter moments."""
        sigma2 = math.log(1.0 + (self.diameter_sd_mm / self.diameter_mean_mm) ** 2)
        return math.log(self.diameter_mean_mm) - sigma2 / 2.0, math.sqrt(sigma2)

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` for a request that cannot be satisfied."""
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 16:
            raise ConfigurationError(f"phantom shape {self.shape_zyx} must have 3 axes of at least 16 voxels")
        if len(self.spacing_xyz) != 3 or min(self.spacing_xyz) <= 0:
            raise ConfigurationError(f"phantom spacing {self.spacing_xyz} must be 3 positive values (mm)")
        if not 0 < self.min_diameter_mm <= self.max_diameter_mm:
            raise ConfigurationError(
                f"tumour diameter range [{self.min_diameter_mm}, {self.max_diameter_mm}] mm is empty or not positive"
            )
        if self.diameter_mean_mm <= 0 or self.diameter_sd_mm < 0:
            raise ConfigurationError("tumour diameter mean must be positive and its sd non-negative")
        low, high = self.tumours_per_case
        if not 0 <= low <= high:
            raise ConfigurationError(f"tumours_per_case {self.tumours_per_case} must be 0 <= min <= max")
        if len(self.placement_probabilities) != 3 or min(self.placement_probabilities) < 0 or not math.isclose(
            sum(self.placement_probabilities), 1.0, abs_tol=1e-6
        ):
            raise ConfigurationError(
                f"placement_probabilities {self.placement_probabilities} must be 3 non-negative values summing to 1"
            )
        smallest_voxel_diameter = 3 * max(self.spacing_xyz)
        if self.max_diameter_mm < smallest_voxel_diameter:
            raise ConfigurationError(
                f"max tumour diameter {self.max_diameter_mm} mm is below 3 voxels ({smallest_voxel_diameter} mm) at "
                f"spacing {self.spacing_xyz} mm; tumours would not be resolved"
            )
        inscribed = max_inscribed_lung_diameter_mm(self)
        if self.max_diameter_mm > inscribed:
            raise ConfigurationError(
                f"tumour diameter up to {self.max_diameter_mm} mm is larger than the lung allows: the largest "
                f"sphere inside a lung of this phantom ({self.shape_zyx} voxels at {self.spacing_xyz} mm) has a "
                f"diameter of {inscribed:.1f} mm; lower max_diameter_mm or enlarge the volume"
            )


@dataclass(frozen=True)
class TumourSpec:
    """One placed tumour. ``center_zyx`` in voxels; ``diameter_mm`` is the requested equivalent diameter."""

    center_zyx: tuple[int, int, int]
    diameter_mm: float
    placement: str
    hu: float
    num_voxels: int


@dataclass
class Phantom:
    """A generated case. ``image`` int16 HU, ``label`` uint8 (1 = tumour), ``tissues`` uint8 :class:`Tissue` codes,
    all ``(z, y, x)``; ``spacing_xyz`` in mm; ``tumours`` in placement order (label components may merge only if
    tumours touch, which placement prevents)."""

    image: np.ndarray
    label: np.ndarray
    tissues: np.ndarray
    lung_mask: np.ndarray
    spacing_xyz: tuple[float, float, float]
    tumours: list[TumourSpec] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# anatomy


def _grid_mm(config: PhantomConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical coordinates (mm) of voxel centres relative to the volume centre, broadcastable ``(z, y, x)``."""
    nz, ny, nx = config.shape_zyx
    sz, sy, sx = config.spacing_zyx
    z = (np.arange(nz) - (nz - 1) / 2.0)[:, None, None] * sz
    y = (np.arange(ny) - (ny - 1) / 2.0)[None, :, None] * sy
    x = (np.arange(nx) - (nx - 1) / 2.0)[None, None, :] * sx
    return z, y, x


def _extent_mm(config: PhantomConfig) -> tuple[float, float, float]:
    """Field of view ``(z, y, x)`` in mm."""
    return tuple(n * s for n, s in zip(config.shape_zyx, config.spacing_zyx))  # type: ignore[return-value]


def _lung_ellipsoids(config: PhantomConfig) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """(centre, semi-axes) in mm, ``(z, y, x)`` order, for the right (-x) and left (+x) lung."""
    fz, fy, fx = _extent_mm(config)
    semi = (0.40 * fz, 0.24 * fy, 0.15 * fx)
    return [((0.04 * fz, -0.02 * fy, side * 0.19 * fx), semi) for side in (-1.0, 1.0)]


def _ellipsoid(z, y, x, centre, semi) -> np.ndarray:
    return ((z - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((x - centre[2]) / semi[2]) ** 2 <= 1


def max_inscribed_lung_diameter_mm(config: PhantomConfig) -> float:
    """Diameter of the largest sphere that fits in one lung of the phantom (the smallest lung semi-axis x 2)."""
    _, semi = _lung_ellipsoids(config)[0]
    return 2.0 * min(semi)


def _anatomy(config: PhantomConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue map, lung mask (both ``(z, y, x)`` uint8/bool) and the per-voxel bone HU (marrow vs cortex)."""
    z, y, x = _grid_mm(config)
    fz, fy, fx = _extent_mm(config)
    shape = config.shape_zyx
    tissues = np.full(shape, Tissue.AIR, dtype=np.uint8)
    body_semi_y, body_semi_x = 0.36 * fy, 0.45 * fx
    body_r = (y / body_semi_y) ** 2 + (x / body_semi_x) ** 2  # (1, y, x)
    body = np.broadcast_to(body_r <= 1.0, shape)
    inner = np.broadcast_to(
        (y / (body_semi_y - 10.0)) ** 2 + (x / (body_semi_x - 10.0)) ** 2 <= 1.0, shape
    )  # 1 cm fat rim
    tissues[body] = Tissue.FAT
    tissues[inner] = Tissue.SOFT_TISSUE

    # ribs: bands of bone just inside the fat rim, every ~25 mm along z, not over the sternum
    rib_ring = (
        ((y / (body_semi_y - 14.0)) ** 2 + (x / (body_semi_x - 14.0)) ** 2 <= 1.0)
        & ((y / (body_semi_y - 22.0)) ** 2 + (x / (body_semi_x - 22.0)) ** 2 > 1.0)
        & (np.abs(x) > 0.08 * fx)
    )
    rib_period, rib_thickness = 25.0, 8.0
    rib_phase = rng.uniform(0, rib_period)
    rib_slices = ((z + rib_phase) % rib_period) < rib_thickness
    tissues[np.broadcast_to(rib_ring, shape) & np.broadcast_to(rib_slices, shape)] = Tissue.BONE

    # spine: a vertebral cylinder behind the mediastinum
    spine_centre_y, spine_r = 0.22 * fy, 0.06 * fx
    spine = np.broadcast_to((y - spine_centre_y) ** 2 + x**2 <= spine_r**2, shape)
    tissues[spine] = Tissue.BONE
    marrow = np.broadcast_to((y - spine_centre_y) ** 2 + x**2 <= (0.6 * spine_r) ** 2, shape)

    # lungs (their mask excludes nothing: vessels and tumours lie inside the lungs)
    lung = np.zeros(shape, dtype=bool)
    for centre, semi in _lung_ellipsoids(config):
        lung |= _ellipsoid(z, y, x, centre, semi)
    lung &= np.broadcast_to(inner, shape)
    lung &= tissues != Tissue.BONE
    tissues[lung] = Tissue.LUNG

    # heart: an ellipsoid in the anterior-inferior mediastinum, partly indenting the left lung
    heart = _ellipsoid(z, y, x, (-0.18 * fz, -0.06 * fy, 0.05 * fx), (0.22 * fz, 0.16 * fy, 0.13 * fx))
    tissues[heart & np.broadcast_to(inner, shape)] = Tissue.HEART
    lung &= ~heart

    # airways: trachea down the midline to the carina, two main bronchi into the lungs
    airway = np.zeros(shape, dtype=bool)
    trachea_y = 0.02 * fy
    carina_z = 0.05 * fz
    trachea = ((y - trachea_y) ** 2 + x**2 <= 7.0**2) & (z >= carina_z)
    airway |= np.broadcast_to(trachea, shape)
    for centre, _ in _lung_ellipsoids(config):
        airway |= _tube(config, (carina_z, trachea_y, 0.0), (carina_z - 0.12 * fz, centre[1], 0.7 * centre[2]), 5.0)
    tissues[airway & (tissues != Tissue.BONE)] = Tissue.AIRWAY

    # vessels: random branching tubes from each hilum into the lung (hard negatives for the segmenter)
    vessels = np.zeros(shape, dtype=bool)
    for centre, semi in _lung_ellipsoids(config):
        hilum = (centre[0] - 0.05 * fz, centre[1], 0.45 * centre[2])
        for _ in range(config.vessels_per_lung):
            direction = rng.normal(size=3)
            direction[2] = abs(direction[2]) * np.sign(centre[2])  # outward, away from the midline
            direction /= np.linalg.norm(direction)
            length = rng.uniform(0.5, 0.9) * min(semi) * 2.0
            end = tuple(h + length * d for h, d in zip(hilum, direction))
            radius = rng.uniform(2.5, 5.0)
            vessels |= _tube(config, hilum, end, radius)
            mid = tuple(h + 0.5 * length * d for h, d in zip(hilum, direction))
            branch = rng.normal(size=3)
            branch /= np.linalg.norm(branch)
            vessels |= _tube(config, mid, tuple(m + 0.4 * length * b for m, b in zip(mid, branch)), 0.7 * radius)
    tissues[vessels & lung] = Tissue.VESSEL

    bone_hu = np.where(marrow, 300.0, TISSUE_HU[Tissue.BONE]).astype(np.float32)
    return tissues, lung, bone_hu


def _tube(config: PhantomConfig, start_mm, end_mm, radius_mm: float) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of a capsule between two points given in mm relative to the volume centre."""
    z, y, x = _grid_mm(config)
    start, end = np.asarray(start_mm, float), np.asarray(end_mm, float)
    axis = end - start
    length2 = float(axis @ axis) or 1e-9
    t = ((z - start[0]) * axis[0] + (y - start[1]) * axis[1] + (x - start[2]) * axis[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    d2 = (z - start[0] - t * axis[0]) ** 2 + (y - start[1] - t * axis[1]) ** 2 + (x - start[2] - t * axis[2]) ** 2
    return d2 <= radius_mm**2


# --------------------------------------------------------------------------------------------------------------
# tumours


def sample_diameters(config: PhantomConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` tumour diameters (mm) from the truncated log-normal of ``config`` (rejection sampling)."""
    mu, sigma = config.lognormal_parameters()
    out = np.empty(0)
    while out.size < n:
        draw = rng.lognormal(mu, sigma, size=max(2 * n, 16))
        draw = draw[(draw >= config.min_diameter_mm) & (draw <= config.max_diameter_mm)]
        out = np.concatenate([out, draw])
    return out[:n]


def _lobulated_blob(radius_mm: float, spacing_zyx, rng: np.random.Generator) -> np.ndarray:
    """A lobulated solid (a sphere with 3-6 overlapping lobes) on a local grid; boolean ``(z, y, x)``."""
    half = [int(math.ceil(1.5 * radius_mm / s)) + 1 for s in spacing_zyx]
    axes = [(np.arange(-h, h + 1) * s) for h, s in zip(half, spacing_zyx)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    blob = z**2 + y**2 + x**2 <= radius_mm**2
    for _ in range(rng.integers(3, 7)):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        offset = direction * rng.uniform(0.45, 0.75) * radius_mm
        lobe_r = rng.uniform(0.35, 0.6) * radius_mm
        blob |= (z - offset[0]) ** 2 + (y - offset[1]) ** 2 + (x - offset[2]) ** 2 <= lobe_r**2
    return blob


def _blob_with_volume(diameter_mm: float, spacing_zyx, rng: np.random.Generator) -> np.ndarray:
    """A lobulated blob whose volume matches a sphere of ``diameter_mm`` (equivalent diameter) to a few percent."""
    target = math.pi / 6.0 * diameter_mm**3
    voxel = float(np.prod(spacing_zyx))
    radius = diameter_mm / 2.0
    state = rng.bit_generator.state
    for _ in range(4):  # the lobes add volume: shrink the core radius until the volume matches
        rng.bit_generator.state = state  # same lobes every iteration, only the scale changes
        blob = _lobulated_blob(radius, spacing_zyx, rng)
        volume = blob.sum() * voxel
        radius *= (target / max(volume, voxel)) ** (1.0 / 3.0)
    rng.bit_generator.state = state
    return _lobulated_blob(radius, spacing_zyx, rng)


def _blob_extent_mm(blob: np.ndarray, spacing_zyx) -> float:
    """Largest distance (mm) from the blob's centre voxel to any of its voxels."""
    offsets = (np.argwhere(blob) - np.array(blob.shape) // 2) * np.asarray(spacing_zyx)
    return float(np.sqrt((offsets**2).sum(axis=1)).max())


def _placement_candidates(
    placement: str, radius_mm: float, extent_mm: float, inner_distance: np.ndarray, lung: np.ndarray,
    medial: np.ndarray, spacing_zyx,
) -> np.ndarray:
    """Voxel indices ``(n, 3)`` where a tumour centre of this placement may go.

    Intrapulmonary: the whole blob (``extent_mm`` from its centre, lobes included) stays a voxel away from the
    lung border. Juxta: the centre is inside the lung, within 0.65 core radii (or one voxel) of its border.
    """
    if placement == "intrapulmonary":
        allowed = inner_distance >= extent_mm + max(spacing_zyx)
    else:  # the tumour centre sits inside the lung, less than a radius from its border: it touches the wall
        allowed = (inner_distance <= max(0.65 * radius_mm, max(spacing_zyx))) & lung  # a border voxel at least
        allowed &= medial if placement == "juxtamediastinal" else ~medial
    return np.argwhere(allowed)


def _place_tumours(
    config: PhantomConfig, rng: np.random.Generator, lung: np.ndarray
) -> tuple[np.ndarray, list[TumourSpec]]:
    """Tumour index map ``(z, y, x)`` uint8 (0 = none, k = k-th placed tumour) and the placed tumours."""
    spacing = config.spacing_zyx
    inner_distance = ndimage.distance_transform_edt(lung, sampling=spacing)
    _, _, x = _grid_mm(config)
    lung_centres_x = [c[2] for c, _ in _lung_ellipsoids(config)]
    medial = np.broadcast_to(np.abs(x) < 0.85 * abs(lung_centres_x[0]), lung.shape)  # towards the mediastinum
    label = np.zeros(lung.shape, dtype=np.uint8)
    occupied = np.zeros(lung.shape, dtype=bool)  # tumours plus a safety gap, so lesions stay separate
    n = int(rng.integers(config.tumours_per_case[0], config.tumours_per_case[1] + 1))
    specs: list[TumourSpec] = []
    for diameter in sample_diameters(config, rng, n):
        placement = PLACEMENTS[int(rng.choice(3, p=config.placement_probabilities))]
        blob = _blob_with_volume(float(diameter), spacing, rng)
        extent = _blob_extent_mm(blob, spacing)
        for placement in (placement, *(p for p in PLACEMENTS if p != placement)):  # fall back to a placement that fits
            candidates = _placement_candidates(placement, diameter / 2.0, extent, inner_distance, lung, medial, spacing)
            if candidates.size:
                break
        if candidates.size == 0:
            # validate() guarantees a sphere of max_diameter fits a lung; lobes can still make this fail
            raise ConfigurationError(
                f"a tumour of {diameter:.1f} mm does not fit in the lungs of a {config.shape_zyx} phantom at "
                f"{config.spacing_xyz} mm; lower max_diameter_mm"
            )
        for _ in range(50):
            centre = candidates[int(rng.integers(len(candidates)))]
            stamp = _stamp(blob, centre, lung.shape) & lung
            if not (stamp & occupied).any():
                break
        else:
            continue  # no free place for this tumour: the case gets fewer tumours (recorded in ``tumours``)
        hu = float(rng.uniform(*TUMOUR_HU_RANGE))
        specs.append(TumourSpec(tuple(int(c) for c in centre), float(diameter), placement, hu, int(stamp.sum())))
        label[stamp] = len(specs)
        gap = max(1, int(math.ceil(2 * max(spacing) / min(spacing))))
        occupied |= ndimage.binary_dilation(stamp, iterations=gap)
    return label, specs


def _stamp(blob: np.ndarray, centre, shape) -> np.ndarray:
    """Place a local ``blob`` centred at voxel ``centre`` into a zero volume of ``shape`` (clipped at borders)."""
    out = np.zeros(shape, dtype=bool)
    src, dst = [], []
    for c, b, n in zip(centre, blob.shape, shape):
        start = int(c) - b // 2
        lo, hi = max(start, 0), min(start + b, n)
        dst.append(slice(lo, hi))
        src.append(slice(lo - start, hi - start))
    out[tuple(dst)] = blob[tuple(src)]
    return out


# --------------------------------------------------------------------------------------------------------------
# public API


def case_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of one case: independent of how many cases are made, distinct per stream (e.g. 'strong')."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode()), int(index)])


def make_phantom(config: PhantomConfig | None = None, rng: np.random.Generator | int = 0) -> Phantom:
    """Generate one phantom case.

    Args:
        config: geometry and tumour distribution (validated here).
        rng: a NumPy generator, or an integer seed.

    Returns:
        The :class:`Phantom` (image in HU, tumour label, tissue map, lung mask, tumour list).

    Raises:
        ConfigurationError: the request cannot be satisfied (e.g. tumours larger than the lung).
    """
    config = config or PhantomConfig()
    config.validate()
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    tissues, lung, bone_hu = _anatomy(config, rng)
    tumour_index, tumours = _place_tumours(config, rng, lung)
    label = (tumour_index > 0).astype(np.uint8)

    nominal = np.array([TISSUE_HU.get(t, 0.0) for t in Tissue], dtype=np.float32)
    hu = np.where(tissues == Tissue.BONE, bone_hu, nominal[tissues])
    tumour_hu = np.array([0.0] + [t.hu for t in tumours], dtype=np.float32)
    hu = np.where(label > 0, tumour_hu[tumour_index], hu)
    tissues = np.where(label > 0, np.uint8(Tissue.TUMOUR), tissues).astype(np.uint8)

    if config.blur_sigma_voxels > 0:
        hu = ndimage.gaussian_filter(hu, sigma=config.blur_sigma_voxels)
    hu = hu + rng.normal(0.0, config.noise_sd_hu, size=hu.shape).astype(np.float32)
    image = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    return Phantom(image=image, label=label, tissues=tissues, lung_mask=lung, spacing_xyz=config.spacing_xyz,
                   tumours=tumours)


def config_to_dict(config: PhantomConfig) -> dict:
    """JSON-able view of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
