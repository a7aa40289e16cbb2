"""Seeded generator of labelled fractal images (iterated function systems), after the fractal
pre-training card in methods.md (Anderson & Farrell, WACV 2022).

Each class is one IFS of n = 2..4 affine maps A = R(t1) diag(s1, s2) R(t2) D + b, with D random sign flips,
b ~ U(-1, 1)^2 and singular values under the sigma-factor constraint sum_i (s_i1 + 2 s_i2) = alpha,
alpha ~ U((5+n)/2, (6+n)/2): sampling A's entries directly gives dust or blobs (the card's trap).
Every image of a class perturbs the class's parameters slightly (the card's jitter_params), renders the
attractor with the chaos game at a random scale and place, colours it in HSV and pastes it on smooth
random-noise background. Image ``i`` depends only on (seed, i), so any image can be regenerated alone.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl

import numpy as np
from PIL import Image

from ..errors import ParameterError


@dataclass(frozen=True)
class FractalConfig:
    classes: int = 10
    per_class: int = 100
    size: int = 64
    seed: int = 0
    test: float = 0.2  # share of each class put in the test split

    @classmethod
    def parse(cls, query: str) -> "FractalConfig":
        kw = {}
        for k, v in parse_qsl(query, strict_parsing=False):
            if k not in cls.__dataclass_fields__:
                raise ParameterError(f"builtin:fractals: unknown option {k!r}; options are "
                                     f"{', '.join(cls.__dataclass_fields__)}")
            try:
                kw[k] = float(v) if k == "test" else int(v)
            except ValueError:
                raise ParameterError(f"builtin:fractals: {k}={v!r} is not a number") from None
        cfg = cls(**kw)  # type: ignore[arg-type]  # each value converted to its field's type above
        if cfg.classes < 1 or cfg.per_class < 1 or not 8 <= cfg.size <= 1024 or not 0 <= cfg.test < 1:
            raise ParameterError("builtin:fractals: need classes >= 1, per_class >= 1, 8 <= size <= 1024, "
                                 "0 <= test < 1")
        return cfg

    def asdict(self) -> dict:
        return asdict(self)

    @property
    def n_test(self) -> int:
        return int(round(self.test * self.per_class))

    def ids_by_split(self) -> dict[str, list[int]]:
        """Global ids (class c, image j -> c * per_class + j); the last n_test of each class are test."""
        cut = self.per_class - self.n_test
        train = [c * self.per_class + j for c in range(self.classes) for j in range(cut)]
        test = [c * self.per_class + j for c in range(self.classes) for j in range(cut, self.per_class)]
        return {"train": train, "test": test} if test else {"train": train}


def _rotation(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s], [s, c]])


def sample_system(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The parameters of one IFS (n maps) satisfying the sigma-factor constraint."""
    n = int(rng.integers(2, 5))
    alpha = rng.uniform((5 + n) / 2, (6 + n) / 2)
    while True:  # split alpha into per-map budgets b_i = s1 + 2 s2 that admit 0 <= s2 <= s1 <= 1
        b = alpha * rng.dirichlet(np.ones(n))
        if (b <= 3.0).all():
            break
    s1 = np.array([rng.uniform(bi / 3, min(1.0, bi)) for bi in b])
    s2 = (b - s1) / 2
    return {
        "s": np.stack([s1, s2], 1),
        "theta": rng.uniform(0, 2 * np.pi, (n, 2)),
        "flip": rng.choice([-1.0, 1.0], (n, 2)),
        "shift": rng.uniform(-1, 1, (n, 2)),
    }


def jitter(system: dict[str, np.ndarray], rng: np.random.Generator, amount: float = 0.05) -> dict:
    out = dict(system)
    out["theta"] = system["theta"] + rng.normal(0, amount * 2, system["theta"].shape)
    out["s"] = np.clip(system["s"] * rng.uniform(1 - amount, 1 + amount, system["s"].shape), 1e-3, 1.0)
    out["shift"] = system["shift"] + rng.normal(0, amount, system["shift"].shape)
    return out


def affine_maps(system: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mats = np.stack([
        _rotation(t1) @ np.diag(s) @ _rotation(t2) @ np.diag(f)
        for (t1, t2), s, f in zip(system["theta"], system["s"], system["flip"])
    ])
    det = np.abs(np.linalg.det(mats)) + 1e-6
    return mats, system["shift"], det / det.sum()


def chaos_game(system: dict, rng: np.random.Generator, n_points: int, chains: int = 256,
               burn_in: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Points on the attractor (P, 2) and the map that produced each (P,)."""
    mats, shift, probs = affine_maps(system)
    x = rng.uniform(-1, 1, (chains, 2))
    steps = burn_in + -(-n_points // chains)
    pts, which = [], []
    for t in range(steps):
        k = rng.choice(len(probs), size=chains, p=probs)
        x = np.einsum("cij,cj->ci", mats[k], x) + shift[k]
        if t >= burn_in:
            pts.append(x)
            which.append(k)
    return np.concatenate(pts), np.concatenate(which)


def smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-octave value noise in [0, 1], (size, size, 3): a cheap stand-in for diamond-square."""
    out = np.zeros((size, size, 3))
    for octave, weight in ((2, 0.5), (4, 0.25), (8, 0.15), (16, 0.1)):
        grid = (rng.random((octave, octave, 3)) * 255).astype(np.uint8)
        up = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
        out += weight * np.asarray(up, dtype=np.float64) / 255
    return out


def draw(system: dict, rng: np.random.Generator, canvas: np.ndarray, side: int, top: int, left: int,
         fill: float | None = None) -> None:
    """Render ``system``'s attractor (chaos game) into ``canvas`` (H, W, 3 floats in [0, 1]) inside the
    ``side``-px square at (top, left), its extent ``fill`` of the square (default: drawn in [0.55, 0.95]),
    coloured in HSV per map."""
    pts, which = chaos_game(system, rng, n_points=max(4000, 6 * side * side))
    lo, hi = np.percentile(pts, [0.5, 99.5], axis=0)
    extent = max(float((hi - lo).max()), 1e-6)
    fill = rng.uniform(0.55, 0.95) if fill is None else fill
    scale = fill * (side - 1) / extent
    offset = rng.uniform(0, 1, 2) * ((side - 1) - (hi - lo) * scale)
    ij = np.rint((pts - lo) * scale + np.maximum(offset, 0)).astype(np.int64) + np.array([left, top])
    h, w = canvas.shape[:2]
    keep = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    ij, which = ij[keep], which[keep]
    hue0 = rng.random()
    colours = np.array([colorsys.hsv_to_rgb((hue0 + 0.15 * k) % 1.0, rng.uniform(0.6, 1), rng.uniform(0.7, 1))
                        for k in range(int(which.max(initial=0)) + 1)])
    counts = np.zeros((h, w))
    np.add.at(counts, (ij[:, 1], ij[:, 0]), 1)
    colour_sum = np.zeros((h, w, 3))
    np.add.at(colour_sum, (ij[:, 1], ij[:, 0]), colours[which])
    mask = counts > 0
    canvas[mask] = colour_sum[mask] / counts[mask][:, None]


def render(cfg: FractalConfig, gid: int) -> np.ndarray:
    """The RGB uint8 image with global id ``gid`` (class gid // per_class)."""
    label = gid // cfg.per_class
    system = sample_system(np.random.default_rng([cfg.seed, 1, label]))
    return render_single(system, np.random.default_rng([cfg.seed, 2, gid]), cfg.size)


def render_single(system: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """One jittered fractal of ``system`` filling most of a ``size``-px image on a random background."""
    canvas = np.zeros((size, size, 3))
    draw(jitter(system, rng), rng, canvas, size, 0, 0)
    background = smooth_noise(rng, size) * rng.uniform(0.3, 0.7)
    drawn = canvas.any(2)
    canvas[~drawn] = background[~drawn]
    return np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)


def render_instances(systems: list[dict], classes: np.ndarray, rng: np.random.Generator, size: int,
                     scale: tuple[float, float] = (0.15, 0.6)) -> np.ndarray:
    """Multi-instance fractal image (the card's pre-training data): one jittered fractal of each system in
    ``classes`` (1-5 of them), each ``scale`` x the image side, at a random place on a random background."""
    canvas = smooth_noise(rng, size) * rng.uniform(0.3, 0.7)
    for c in classes:
        side = max(4, int(round(rng.uniform(*scale) * size)))
        top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
        draw(jitter(systems[int(c)], rng), rng, canvas, side, top, left, fill=0.9)
    return np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)
