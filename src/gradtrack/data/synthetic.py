"""Procedural tracking sequences with exact ground truth, deterministic by seed.

A textured target (a rounded rectangle or an ellipse with its own random texture) moves over a textured,
cluttered background.  Every motion and nuisance is a switch with a strength in :class:`SyntheticConfig`;
:func:`generate` renders the frames and returns a :class:`SyntheticSequence`.  Same config (seed included)
-> same bytes; all randomness comes from ``numpy.random.default_rng(cfg.seed)``.

Ground truth (0-based continuous pixel coordinates, see :mod:`gradtrack.geometry.boxes`):

* ``boxes[t]``: the axis-aligned extent of the **whole** target, visible and occluded parts alike, computed
  analytically from the target's pose (sub-pixel exact, for the sharp target at the frame's instant;
  motion blur smears the picture, not the ground truth).  When the target is partly outside the image
  the box is **not clipped** (it extends past the border).  When no pixel of the target lies in the
  image the box is ``NaN`` (and the ``absent`` flag is set).
* ``masks[t]``: ``H x W`` bool, the pixels whose centre lies inside the target (the full target, occluded
  parts included); the bounding box of a mask equals the box within 1 px when the target is inside the
  image.  ``visible_masks[t]`` removes the occluded pixels.
* ``visible[t]``: the visible fraction, ``visible_masks[t].sum() / (pixel count of the whole target,
  inside the image or not)``: 1 when fully in view and unoccluded, 0 when absent or fully hidden.
* ``polygons[t]``: the target's rotated rectangle (its oriented bounding rectangle, corners clockwise from
  the target's own top-left), 8 values, ``NaN`` when absent.  For a rounded rectangle the box is the
  extent of the rounded shape, so it can be a little smaller than the polygon's min-max box.
* ``centers`` (``N x 2``), ``scales`` (``N``, relative to the first frame) and ``angles`` (``N``,
  degrees, counter-clockwise on screen is negative: positive angles turn +x towards +y) give the pose.

Per-frame flags (``tags[name]``, ``N`` bool; every sequence has all of them) and the thresholds used:

* ``scale_change``: the scale differs from frame 0 by more than 20 % (``|log s| > log 1.2``);
* ``rotation``: the angle differs from frame 0 by more than 10 degrees;
* ``occlusion``: the occluder hides at least one target pixel;
* ``distractors``: a distractor's centre is within 2.5 target sizes (``max(w, h)``) of the target centre;
* ``illumination``: gain differs from 1 by more than 0.1 or offset from 0 by more than 10 grey levels;
* ``motion_blur``: the target's blur kernel is at least 2 px long;
* ``out_of_view``: part or all of the target lies outside the image; ``absent``: all of it does;
* ``camera_motion``: the background moved by more than 0.5 px since the previous frame.

``attributes`` lists the flags set in at least one frame (in the order above).  Distractors are drawn
behind the target and the occluder in front of it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..config import ConfigError, from_dict, to_dict
from ..io.frames import ArrayFrames, write_video

TAG_NAMES = (
    "scale_change",
    "rotation",
    "occlusion",
    "distractors",
    "illumination",
    "motion_blur",
    "out_of_view",
    "absent",
    "camera_motion",
)


@dataclass
class SyntheticConfig:
    """One procedural sequence.  Strengths of 0 switch a nuisance off.

    * ``target_size``: range of the target's longer side at frame 0, as a fraction of ``min(width, height)``;
      ``aspect``: range of its width / height; ``shape``: ``rectangle`` (rounded corners), ``ellipse`` or
      ``random``.
    * ``speed``: typical target speed in px/frame (smooth random walk towards random goals; 0 = still).
    * ``scale_change``: amplitude of the log-scale oscillation (0.3 -> scale in about ``e^-0.6 .. e^0.6``
      of frame 0, limited so the target stays at least 8 px and fits the image).
    * ``rotation``: amplitude of the in-plane rotation in degrees (the target starts axis-aligned).
    * ``occlusion``: occluder size relative to the target (0.5: half as large; >= 1.2 can hide it fully);
      one occluder pass per 60 frames (at least one) crosses the target.
    * ``distractors``: number of similar-looking objects (the target's shape and texture, recoloured by
      ``distractor_similarity``: 1 = identical colours) moving around the target.
    * ``illumination``: global gain/offset drift strength (1.0: gain 0.5..1.5, offset -40..40).
    * ``motion_blur``: blur length as a multiple of the target's displacement per frame.
    * ``leave_frame``: the target leaves the image completely and comes back.
    * ``camera_motion``: background shift speed in px/frame (the background pans).
    * ``noise``: standard deviation of Gaussian sensor noise in grey levels.
    """

    num_frames: int = 100
    size: tuple[int, int] = (320, 240)
    seed: int = 0
    name: str = "synthetic"
    fps: float = 30.0
    shape: Literal["random", "rectangle", "ellipse"] = "random"
    target_size: tuple[float, float] = (0.15, 0.3)
    aspect: tuple[float, float] = (0.5, 2.0)
    speed: float = 2.0
    scale_change: float = 0.0
    rotation: float = 0.0
    occlusion: float = 0.0
    distractors: int = 0
    distractor_similarity: float = 0.8
    illumination: float = 0.0
    motion_blur: float = 0.0
    leave_frame: bool = False
    camera_motion: float = 0.0
    noise: float = 2.0

    def validate(self) -> None:
        w, h = self.size
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if w < 32 or h < 32:
            raise ValueError(f"size must be at least 32x32, got {w}x{h}")
        if w > 4096 or h > 4096:
            raise ValueError(f"size must be at most 4096x4096, got {w}x{h}")
        lo, hi = self.target_size
        if not 0.05 <= lo <= hi <= 0.5:
            raise ValueError(f"target_size must satisfy 0.05 <= low <= high <= 0.5, got {self.target_size}")
        alo, ahi = self.aspect
        if not 0.25 <= alo <= ahi <= 4.0:
            raise ValueError(f"aspect must satisfy 0.25 <= low <= high <= 4, got {self.aspect}")
        for key in ("speed", "scale_change", "rotation", "occlusion", "illumination", "motion_blur",
                    "camera_motion", "noise"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {v}")
        if self.illumination > 1.5:
            raise ValueError(f"illumination must be <= 1.5 (gain stays positive), got {self.illumination}")
        if self.scale_change > 1.0:
            raise ValueError(f"scale_change must be <= 1.0, got {self.scale_change}")
        if not 0 <= self.distractors <= 16:
            raise ValueError(f"distractors must be in 0..16, got {self.distractors}")
        if not 0.0 <= self.distractor_similarity <= 1.0:
            raise ValueError(f"distractor_similarity must be in [0, 1], got {self.distractor_similarity}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.shape not in ("random", "rectangle", "ellipse"):
            raise ValueError(f"shape must be random, rectangle or ellipse, got {self.shape!r}")


@dataclass
class SyntheticSequence:
    """A rendered sequence and its exact ground truth (see the module docstring for the conventions)."""

    name: str
    frames: ArrayFrames
    boxes: np.ndarray  # N x 4 float64, NaN when absent
    masks: np.ndarray  # N x H x W bool, whole target
    visible_masks: np.ndarray  # N x H x W bool, unoccluded part inside the image
    visible: np.ndarray  # N float64 in [0, 1]
    polygons: np.ndarray  # N x 8 float64, NaN when absent
    centers: np.ndarray  # N x 2
    scales: np.ndarray  # N
    angles: np.ndarray  # N, degrees
    tags: dict[str, np.ndarray]  # name -> N bool
    attributes: list[str]
    config: SyntheticConfig = field(repr=False)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.size

    @property
    def init_box(self) -> np.ndarray:
        return self.boxes[0].copy()

    @property
    def fps(self) -> float | None:
        return self.frames.fps

    def save(self, folder: str | Path, *, video: bool = True) -> Path:
        """Write the sequence as ``video.mp4`` (lossy mp4v) or ``img/00001.png...`` (lossless, ``video=False``),
        ``groundtruth.txt`` (0-based ``x,y,w,h``, ``nan,nan,nan,nan`` when absent) and ``meta.json``
        (config, attributes, per-frame flags, visible fractions).  Returns the folder."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        if video:
            write_video(out / "video.mp4", self.frames, fps=self.config.fps)
        else:
            (out / "img").mkdir(exist_ok=True)
            for i, f in enumerate(self.frames):
                if not cv2.imwrite(str(out / "img" / f"{i + 1:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {out / 'img' / f'{i + 1:05d}.png'}")
        lines = [",".join("nan" if not np.isfinite(v) else f"{v:.4f}" for v in b) for b in self.boxes]
        (out / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        w, h = self.size
        meta = {
            "dataset": "synthetic", "name": self.name, "frames": len(self), "width": w, "height": h,
            "fps": self.config.fps, "annotation": "0-based continuous x,y,w,h (gradtrack convention)",
            "attributes": self.attributes, "config": to_dict(self.config),
            "tags": {k: np.flatnonzero(v).tolist() for k, v in self.tags.items()},
            "visible": [round(float(v), 4) for v in self.visible],
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=1))
        return out


# --------------------------------------------------------------------------------------------------
# textures


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    ch = max(2, int(round(cells * h / max(h, w))) + 1)
    cw = max(2, int(round(cells * w / max(h, w))) + 1)
    small = rng.random((ch, cw, channels), dtype=np.float32)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def random_texture(rng: np.random.Generator, h: int, w: int, clutter: int = 0) -> np.ndarray:
    """A random colour texture ``h x w x 3`` float32 in [0, 255]: multi-scale noise, stripes and blobs
    on a random two-colour palette, plus ``clutter`` random filled shapes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.zeros((h, w, 1), np.float32)
    weights = rng.dirichlet(np.ones(4)).astype(np.float32)
    for wgt, cells in zip(weights, (3, 8, 20, 60)):
        t += wgt * _smooth_noise(rng, h, w, min(cells, max(h, w)))
    if rng.random() < 0.7:  # stripes
        phi = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period + rng.uniform(0, 6.3))
        t = (1 - 0.45) * t + 0.45 * stripes[:, :, None]
    lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / max(hi - lo, 1e-6)
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    tex = (c1 * (1 - t) + c2 * t).astype(np.float32)
    tex += 30.0 * (_smooth_noise(rng, h, w, 12, 3) - 0.5)  # colour variation
    n_blobs = int(rng.integers(2, 7)) + clutter
    for i in range(n_blobs):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = max(1, int(rng.uniform(0.03, 0.18) * min(h, w)))
        if i % 2 == 0:
            axes = (r, max(1, int(r * rng.uniform(0.4, 1.0))))
            cv2.ellipse(tex, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(tex, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1, cv2.LINE_AA)
    return np.clip(tex, 0, 255)


# --------------------------------------------------------------------------------------------------
# objects


@dataclass
class _Shape:
    kind: str  # "rectangle" | "ellipse"
    a: float  # half width at scale 1 (canonical units = pixels at scale 1)
    b: float  # half height
    r: float  # corner radius (rectangle)
    texture: np.ndarray  # float32, canonical texture sampled at `res` texels per unit
    res: float

    def half_extent(self, s: float, theta: float) -> tuple[float, float]:
        c, si = abs(math.cos(theta)), abs(math.sin(theta))
        if self.kind == "ellipse":
            hx = math.sqrt((self.a * c) ** 2 + (self.b * si) ** 2)
            hy = math.sqrt((self.a * si) ** 2 + (self.b * c) ** 2)
        else:
            hx = (self.a - self.r) * c + (self.b - self.r) * si + self.r
            hy = (self.a - self.r) * si + (self.b - self.r) * c + self.r
        return s * hx, s * hy

    def polygon(self, cx: float, cy: float, s: float, theta: float) -> np.ndarray:
        c, si = math.cos(theta), math.sin(theta)
        pts = []
        for u, v in ((-self.a, -self.b), (self.a, -self.b), (self.a, self.b), (-self.a, self.b)):
            pts += [cx + s * (c * u - si * v), cy + s * (si * u + c * v)]
        return np.array(pts)

    def field(self, x0: int, y0: int, w: int, h: int, cx: float, cy: float, s: float, theta: float):
        """Inside test and signed distance (pixels, < 0 inside) at the pixel centres of a window."""
        xs = (np.arange(x0, x0 + w, dtype=np.float64) + 0.5 - cx)[None, :]
        ys = (np.arange(y0, y0 + h, dtype=np.float64) + 0.5 - cy)[:, None]
        c, si = math.cos(theta), math.sin(theta)
        u = (c * xs + si * ys) / s
        v = (-si * xs + c * ys) / s
        if self.kind == "ellipse":
            f = (u / self.a) ** 2 + (v / self.b) ** 2
            inside = f <= 1.0
            grad = 2.0 * np.sqrt((u / self.a**2) ** 2 + (v / self.b**2) ** 2)
            sd = (f - 1.0) / np.maximum(grad, 1e-9)
        else:
            qx = np.abs(u) - (self.a - self.r)
            qy = np.abs(v) - (self.b - self.r)
            outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
            sd = outside + np.minimum(np.maximum(qx, qy), 0) - self.r
            inside = sd <= 0
        return inside, sd * s

    def sample_texture(self, x0: int, y0: int, w: int, h: int, cx: float, cy: float, s: float, theta: float):
        c, si = math.cos(theta), math.sin(theta)
        k = self.res / s
        ox, oy = x0 + 0.5 - cx, y0 + 0.5 - cy
        m = np.array([
            [k * c, k * si, k * (c * ox + si * oy) + self.a * self.res - 0.5],
            [-k * si, k * c, k * (-si * ox + c * oy) + self.b * self.res - 0.5],
        ])
        return cv2.warpAffine(self.texture, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)


def _make_shape(rng, kind: str, long_side: float, aspect: float, max_scale: float, min_scale: float = 1.0) -> _Shape:
    if aspect >= 1:
        a, b = long_side / 2, long_side / 2 / aspect
    else:
        a, b = long_side / 2 * aspect, long_side / 2
    a, b = max(a, 4.0), max(b, 4.0)
    # rounded corners with a radius >= 1.5 px at every scale (see the curvature note in generate())
    r = min(max(1.5 / min_scale, rng.uniform(0.1, 0.3) * min(a, b)), min(a, b)) if kind == "rectangle" else 0.0
    res = max(1.0, max_scale)
    texture = random_texture(rng, int(math.ceil(2 * b * res)) + 2, int(math.ceil(2 * a * res)) + 2)
    return _Shape(kind, a, b, r, texture, res)


def _line_kernel(dx: float, dy: float) -> np.ndarray | None:
    length = math.hypot(dx, dy)
    if length < 2.0:
        return None
    half = int(math.ceil(length / 2)) + 1
    k = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    n = max(2, int(math.ceil(length * 2)))
    for t in np.linspace(-0.5, 0.5, n):
        x, y = half + t * dx, half + t * dy
        ix, iy = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - ix, y - iy
        k[iy, ix] += (1 - fx) * (1 - fy)
        k[iy, ix + 1] += fx * (1 - fy)
        k[iy + 1, ix] += (1 - fx) * fy
        k[iy + 1, ix + 1] += fx * fy
    return k / k.sum()


def _render(canvas: np.ndarray, shape: _Shape, cx: float, cy: float, s: float, theta: float,
            tint: np.ndarray | None = None, blur: tuple[float, float] | None = None):
    """Composite the object into ``canvas`` (float32 H x W x 3, in place).

    Returns ``(full_count, window, inside)``: the number of pixel centres inside the object (in the image
    or not) and its inside mask restricted to the image (``window`` = ``(x0, y0, x1, y1)``, or ``None``).
    """
    H, W = canvas.shape[:2]
    hx, hy = shape.half_extent(s, theta)
    kernel = _line_kernel(*blur) if blur is not None else None
    pad = 2 + (kernel.shape[0] // 2 if kernel is not None else 0)
    x0, x1 = int(math.floor(cx - hx)) - pad, int(math.ceil(cx + hx)) + pad
    y0, y1 = int(math.floor(cy - hy)) - pad, int(math.ceil(cy + hy)) + pad
    w, h = x1 - x0, y1 - y0
    inside, sd = shape.field(x0, y0, w, h, cx, cy, s, theta)
    full = int(inside.sum())
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if ix0 >= ix1 or iy0 >= iy1:
        return full, None, None
    alpha = np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)[:, :, None]
    tex = shape.sample_texture(x0, y0, w, h, cx, cy, s, theta)
    if tint is not None:
        tex = np.clip(tex * tint[0] + tint[1], 0, 255)
    premult = tex * alpha
    if kernel is not None:
        premult = cv2.filter2D(premult, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)[:, :, None]
    sl = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
    region = canvas[iy0:iy1, ix0:ix1]
    region *= 1.0 - alpha[sl]
    region += premult[sl]
    return full, (ix0, iy0, ix1, iy1), inside[sl]


# --------------------------------------------------------------------------------------------------
# motion


def _walk(rng, n: int, start, speed: float, goal_fn, bounds=None, phase_fn=None) -> np.ndarray:
    """Smooth random walk: the velocity relaxes towards ``speed`` in the direction of a goal that changes
    every 15-40 frames (or when reached); positions reflect off ``bounds`` ``(lo_x, lo_y, hi_x, hi_y)``.
    ``phase_fn(t, p) -> (forced_goal or None, max_speed, reflect)`` overrides this frame by frame."""
    pos = np.zeros((n, 2))
    p = np.array(start, dtype=np.float64)
    ang = rng.uniform(0, 2 * np.pi)
    v = 0.5 * speed * np.array([math.cos(ang), math.sin(ang)])
    goal, next_change = goal_fn(0, p), int(rng.integers(15, 41))
    for t in range(n):
        pos[t] = p
        forced, vmax, reflect = (None, speed, bounds is not None) if phase_fn is None else phase_fn(t, p)
        if forced is None and (t >= next_change or np.linalg.norm(goal - p) < 4.0):
            goal, next_change = goal_fn(t, p), t + int(rng.integers(15, 41))
        d = (goal if forced is None else forced) - p
        dist = float(np.linalg.norm(d))
        want = d / dist * vmax * min(1.0, dist / (6.0 * max(vmax, 1e-6))) if dist > 1e-9 else np.zeros(2)
        v = 0.85 * v + 0.15 * want + rng.normal(0.0, 0.08 * vmax, 2)
        nv = float(np.linalg.norm(v))
        if nv > vmax:
            v *= vmax / nv
        p = p + v
        if reflect and bounds is not None:
            for ax in range(2):
                lo, hi = bounds[ax], bounds[ax + 2]
                if p[ax] < lo:
                    p[ax], v[ax] = 2 * lo - p[ax], abs(v[ax])
                elif p[ax] > hi:
                    p[ax], v[ax] = 2 * hi - p[ax], -abs(v[ax])
                p[ax] = min(max(p[ax], lo), hi)
    return pos


def _oscillation(rng, n: int) -> np.ndarray:
    """Smooth curve in [-1, 1] starting at 0: ``(sin(w t + phi) - sin phi) / 2``, 0.75-1.5 periods."""
    t = np.arange(n, dtype=np.float64)
    omega = 2 * np.pi * rng.uniform(0.75, 1.5) / max(n, 2)
    phi = rng.uniform(0, 2 * np.pi)
    return (np.sin(omega * t + phi) - math.sin(phi)) / 2.0


# --------------------------------------------------------------------------------------------------
# generation


def generate(cfg: SyntheticConfig | dict | None = None, **overrides) -> SyntheticSequence:
    """Render the sequence described by ``cfg`` (a :class:`SyntheticConfig`, a dict, or keyword overrides)."""
    if cfg is None:
        cfg = SyntheticConfig()
    if isinstance(cfg, dict):
        cfg = from_dict(SyntheticConfig, cfg)
    elif not isinstance(cfg, SyntheticConfig):
        raise ConfigError(f"generate() takes a SyntheticConfig or a dict, got {type(cfg).__name__}")
    if overrides:
        data = to_dict(cfg)
        data.update(overrides)
        cfg = from_dict(SyntheticConfig, data)
    else:
        cfg = from_dict(SyntheticConfig, to_dict(cfg))  # validate (a dataclass can be built unchecked)
    rng = np.random.default_rng(cfg.seed)
    W, H = cfg.size
    n = cfg.num_frames
    short = min(W, H)

    # --- target geometry: base size, scale and rotation schedules
    kind = cfg.shape if cfg.shape != "random" else ("rectangle" if rng.random() < 0.5 else "ellipse")
    long_side = rng.uniform(*cfg.target_size) * short
    aspect = math.exp(rng.uniform(math.log(cfg.aspect[0]), math.log(cfg.aspect[1])))
    # first pass at the base size to know the half sizes, then the admissible scale range
    a0 = max(long_side / 2 * min(aspect, 1.0), 4.0)
    b0 = max(long_side / 2 / max(aspect, 1.0), 4.0)
    s_hi = max(1.0, 0.42 * short / (a0 + b0))  # the box of the rotated target, a0 + b0 at most, fits
    # smallest scale: the short side stays >= 8 px and (ellipse) the sharpest curvature radius >= 1 px,
    # which keeps the pixel mask's bounding box within 1 px of the analytic box
    s_lo = min(1.0, max(4.0 / min(a0, b0), max(a0, b0) / min(a0, b0) ** 2))
    amp = min(cfg.scale_change, math.log(s_hi) / 2.0, -math.log(max(s_lo, 1e-6)) / 2.0)
    osc_s = _oscillation(rng, n)
    scales = np.exp(2.0 * amp * osc_s)
    osc_r = _oscillation(rng, n)
    angles = 2.0 * cfg.rotation * osc_r  # degrees, 0 at frame 0
    target = _make_shape(rng, kind, long_side, aspect, float(scales.max()), float(scales.min()))
    thetas = np.deg2rad(angles)
    reach = np.array([math.hypot(*target.half_extent(s, th)) for s, th in zip(scales, thetas)])
    margin = float(reach.max()) + 1.0
    # centres that keep the whole target inside the image; a target too large for that (large
    # target_size with rotation) stays at the image centre along that axis and may touch the border
    bx0, bx1 = (margin, W - margin) if 2 * margin <= W else (W / 2, W / 2)
    by0, by1 = (margin, H - margin) if 2 * margin <= H else (H / 2, H / 2)
    bounds = (bx0, by0, bx1, by1)

    def uniform_inside(_t, _p):
        return np.array([rng.uniform(bounds[0], bounds[2]), rng.uniform(bounds[1], bounds[3])])

    start = uniform_inside(0, None)
    if cfg.leave_frame:
        # normal motion, then [t_out, t_back): head for a point far outside one border, then come back to a
        # random point inside and resume the normal (wall-reflecting) motion
        t_out, t_back = int(round(0.2 * n)), int(round(0.6 * n))
        far = margin * 1.5 + 6.0
        side = int(rng.integers(0, 4))
        ry, rx = rng.uniform(bounds[1], bounds[3]), rng.uniform(bounds[0], bounds[2])
        exit_point = np.array([(-far, ry), (W + far, ry), (rx, -far), (rx, H + far)][side])
        back_point = uniform_inside(0, None)
        leave_speed = max(cfg.speed, 1.6 * (max(W, H) + far) / max(t_back - t_out, 1))
        state = {"back": True}

        def phase_fn(t, p):
            if t_out <= t < t_back:
                state["back"] = False
                return exit_point, leave_speed, False
            if not state["back"]:
                if bounds[0] <= p[0] <= bounds[2] and bounds[1] <= p[1] <= bounds[3]:
                    state["back"] = True
                else:
                    return back_point, leave_speed, False
            return None, cfg.speed, True

        centers = _walk(rng, n, start, cfg.speed, uniform_inside, bounds, phase_fn)
    else:
        centers = _walk(rng, n, start, cfg.speed, uniform_inside, bounds)

    # --- background (with room to pan), occluder, distractors, illumination
    cam_margin = int(math.ceil(min(64.0, 8.0 + 12.0 * cfg.camera_motion))) if cfg.camera_motion > 0 else 0
    background = random_texture(rng, H + 2 * cam_margin, W + 2 * cam_margin, clutter=int(rng.integers(6, 14)))
    if cfg.camera_motion > 0:
        lim = cam_margin - 1.0
        cam = _walk(rng, n, (0.0, 0.0), cfg.camera_motion,
                    lambda _t, _p: rng.uniform(-lim, lim, 2), (-lim, -lim, lim, lim))
    else:
        cam = np.zeros((n, 2))

    occl_active = np.zeros(n, bool)
    occl_pos = np.zeros((n, 2))
    occluder = None
    if cfg.occlusion > 0:
        occ_long = max(8.0, cfg.occlusion * 2 * max(target.a, target.b) * float(np.median(scales)))
        occluder = _make_shape(rng, "rectangle", occ_long, math.exp(rng.uniform(-0.5, 0.5)), 1.0)
        events = max(1, n // 60)
        for e in range(events):
            seg0, seg1 = e * n // events, (e + 1) * n // events
            dur = max(6, int(rng.uniform(0.5, 0.8) * (seg1 - seg0)))
            dur = min(dur, seg1 - seg0)
            t0 = seg0 + int(rng.integers(0, seg1 - seg0 - dur + 1))
            # pass over the target while it is in view (matters with leave_frame): centre the pass on a
            # frame of this segment where the whole target is inside the image, if there is one
            in_view = [t for t in range(seg0, seg1)
                       if bx0 <= centers[t, 0] <= bx1 and by0 <= centers[t, 1] <= by1]
            if in_view and not (bx0 <= centers[t0 + dur // 2, 0] <= bx1 and by0 <= centers[t0 + dur // 2, 1] <= by1):
                mid = in_view[int(rng.integers(0, len(in_view)))]
                t0 = min(max(mid - dur // 2, seg0), seg1 - dur)
            ang = rng.uniform(0, 2 * np.pi)
            d = np.array([math.cos(ang), math.sin(ang)])
            perp = np.array([-d[1], d[0]]) * rng.uniform(-0.3, 0.3) * min(target.a, target.b)
            span = (margin + math.hypot(occluder.a, occluder.b)) * 1.05
            for t in range(t0, t0 + dur):
                f = (t - t0) / max(dur - 1, 1)
                occl_active[t] = True
                occl_pos[t] = centers[t] + perp + d * span * (2 * f - 1)

    distractor_objs, distractor_paths = [], []
    for _ in range(cfg.distractors):
        sim = cfg.distractor_similarity
        gain = 1.0 + (1.0 - sim) * rng.uniform(-0.6, 0.6, 3)
        offset = (1.0 - sim) * rng.uniform(-60, 60, 3)
        size_f = rng.uniform(0.8, 1.2)
        shp = _Shape(target.kind, target.a * size_f, target.b * size_f, target.r * size_f, target.texture, target.res / size_f)
        if sim < 0.5:  # weakly similar: own texture, same shape family
            shp = _make_shape(rng, target.kind, 2 * max(target.a, target.b) * size_f, target.a / target.b, 1.0)
        dmargin = math.hypot(shp.a, shp.b) * max(1.0, float(scales.max()))
        dbounds = (-dmargin, -dmargin, W + dmargin, H + dmargin)
        spread = 2.0 * max(target.a, target.b)
        ang = rng.uniform(0, 2 * np.pi)
        start_d = centers[0] + np.array([math.cos(ang), math.sin(ang)]) * rng.uniform(1.5, 3.0) * spread

        def near_target(t, _p, _spread=spread):
            off = rng.normal(0, 1, 2)
            off = off / max(np.linalg.norm(off), 1e-9) * rng.uniform(1.2, 3.0) * _spread
            return centers[min(t + 10, n - 1)] + off

        path = _walk(rng, n, start_d, max(1.0, cfg.speed) * rng.uniform(0.8, 1.4), near_target, dbounds)
        distractor_objs.append((shp, np.stack([gain, offset]).astype(np.float32), rng.uniform(-np.pi, np.pi)))
        distractor_paths.append(path)

    osc_g, osc_o = _oscillation(rng, n), _oscillation(rng, n)
    gains = 1.0 + 0.5 * cfg.illumination * osc_g  # 1 +- strength / 2
    offsets = 40.0 * cfg.illumination * osc_o  # +- 40 * strength grey levels
    vel = np.zeros((n, 2))
    vel[1:] = centers[1:] - centers[:-1]
    if n > 1:
        vel[0] = vel[1]

    # --- render
    frames = np.empty((n, H, W, 3), np.uint8)
    masks = np.zeros((n, H, W), bool)
    vis_masks = np.zeros((n, H, W), bool)
    visible = np.zeros(n)
    boxes = np.full((n, 4), np.nan)
    polygons = np.full((n, 8), np.nan)
    occl_hit = np.zeros(n, bool)
    out_of_view = np.zeros(n, bool)
    dist_near = np.zeros(n, bool)
    blur_on = np.zeros(n, bool)
    # sensor noise: a small bank of noise fields, cropped at random offsets (much cheaper than fresh noise)
    noise_pad = 16
    noise_bank = (rng.standard_normal((4, H + noise_pad, W + noise_pad, 3), dtype=np.float32)
                  * np.float32(cfg.noise)) if cfg.noise > 0 else None
    for t in range(n):
        if cfg.camera_motion > 0:
            ox, oy = cam[t] + cam_margin
            m = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy]])
            canvas = cv2.warpAffine(background, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT)
        else:
            canvas = background.copy()
        cx, cy = centers[t]
        s, th = float(scales[t]), float(thetas[t])
        hx, hy = target.half_extent(s, th)
        for (shp, tint, spin), path in zip(distractor_objs, distractor_paths):
            dx, dy = path[t]
            _render(canvas, shp, dx, dy, s, th * 0.5 + spin * (cfg.rotation > 0), tint)
            if math.hypot(dx - cx, dy - cy) < 2.5 * 2 * max(hx, hy):
                dist_near[t] = True
        blur = None
        if cfg.motion_blur > 0:
            bvec = (cfg.motion_blur * vel[t, 0], cfg.motion_blur * vel[t, 1])
            if math.hypot(*bvec) >= 2.0:
                blur, blur_on[t] = bvec, True
        full, win, inside = _render(canvas, target, cx, cy, s, th, None, blur)
        in_image = 0
        if win is not None:
            x0, y0, x1, y1 = win
            masks[t, y0:y1, x0:x1] = inside
            vis_masks[t, y0:y1, x0:x1] = inside
            in_image = int(inside.sum())
        n_vis = in_image
        if occluder is not None and occl_active[t]:
            ocx, ocy = occl_pos[t]
            _, owin, oin = _render(canvas, occluder, ocx, ocy, 1.0, 0.0)
            if owin is not None and in_image:
                x0, y0, x1, y1 = owin
                hidden = vis_masks[t, y0:y1, x0:x1] & oin
                n_vis -= int(hidden.sum())
                vis_masks[t, y0:y1, x0:x1] &= ~oin
        occl_hit[t] = n_vis < in_image
        out_of_view[t] = in_image < full
        visible[t] = n_vis / full if full else 0.0
        if in_image > 0:
            boxes[t] = (cx - hx, cy - hy, 2 * hx, 2 * hy)
            polygons[t] = target.polygon(cx, cy, s, th)
        if cfg.illumination > 0:
            canvas *= np.float32(gains[t])
            canvas += np.float32(offsets[t])
        if noise_bank is not None:
            k, nx, ny = rng.integers(0, 4), rng.integers(0, noise_pad), rng.integers(0, noise_pad)
            canvas += noise_bank[k, ny:ny + H, nx:nx + W]
        canvas += np.float32(0.5)  # round half up by truncation below
        np.clip(canvas, 0, 255, out=canvas)
        frames[t] = canvas.astype(np.uint8)

    log_s = np.log(scales / scales[0])
    cam_step = np.zeros(n)
    cam_step[1:] = np.linalg.norm(np.diff(cam, axis=0), axis=1)
    tags = {
        "scale_change": np.abs(log_s) > math.log(1.2),
        "rotation": np.abs(angles - angles[0]) > 10.0,
        "occlusion": occl_hit,
        "distractors": dist_near,
        "illumination": (np.abs(gains - 1.0) > 0.1) | (np.abs(offsets) > 10.0),
        "motion_blur": blur_on,
        "out_of_view": out_of_view,
        "absent": np.isnan(boxes[:, 0]),
        "camera_motion": cam_step > 0.5,
    }
    attributes = [k for k in TAG_NAMES if tags[k].any()]
    return SyntheticSequence(
        name=f"{cfg.name}-{cfg.seed}",
        frames=ArrayFrames(list(frames), fps=cfg.fps),
        boxes=boxes,
        masks=masks,
        visible_masks=vis_masks,
        visible=visible,
        polygons=polygons,
        centers=centers.copy(),
        scales=scales / scales[0],
        angles=angles,
        tags=tags,
        attributes=attributes,
        config=cfg,
    )


# --------------------------------------------------------------------------------------------------
# presets and the small benchmark

PRESETS: dict[str, dict] = {
    "easy": {"speed": 1.5},
    "demo": {"speed": 2.5, "scale_change": 0.15, "rotation": 8.0, "occlusion": 0.5, "illumination": 0.3},
    "fast": {"speed": 7.0},
    "scale": {"scale_change": 0.35},
    "rotation": {"rotation": 40.0},
    "occlusion": {"occlusion": 0.8},
    "distractors": {"distractors": 3},
    "illumination": {"illumination": 0.8},
    "blur": {"speed": 5.0, "motion_blur": 1.5},
    "leave": {"leave_frame": True},
    "camera": {"camera_motion": 3.0},
    "all": {"speed": 3.0, "scale_change": 0.25, "rotation": 25.0, "occlusion": 0.6, "distractors": 2,
            "illumination": 0.5, "motion_blur": 1.0, "leave_frame": True, "camera_motion": 2.0},
}
"""Named presets: overrides of :class:`SyntheticConfig` (the name becomes ``cfg.name``)."""

BENCHMARK_PRESETS = ("easy", "scale", "rotation", "occlusion", "distractors", "illumination", "blur", "leave",
                     "camera", "all")


def list_presets() -> list[str]:
    return list(PRESETS)


def preset_config(name: str, seed: int = 0, **overrides) -> SyntheticConfig:
    """The :class:`SyntheticConfig` of preset ``name`` with ``seed`` and any further overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {name!r}; known presets: {', '.join(PRESETS)}")
    data = {"name": name, **PRESETS[name], "seed": seed, **overrides}
    return from_dict(SyntheticConfig, data, where=f"synthetic preset {name!r}")


def preset(name: str, seed: int = 0, **overrides) -> SyntheticSequence:
    """Generate preset ``name`` (see :data:`PRESETS`); e.g. ``preset("occlusion", seed=3, num_frames=50)``."""
    return generate(preset_config(name, seed, **overrides))


def benchmark_suite(seed: int = 0, num_frames: int = 80, size: tuple[int, int] = (320, 240),
                    presets=BENCHMARK_PRESETS) -> list[SyntheticSequence]:
    """A small benchmark: one sequence per preset in ``presets`` (seeds ``seed, seed + 1, ...``), covering
    every attribute of :data:`TAG_NAMES` with the default presets."""
    return [preset(p, seed=seed + i, num_frames=num_frames, size=tuple(size)) for i, p in enumerate(presets)]
