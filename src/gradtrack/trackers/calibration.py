"""Calibrated confidence and the ``lost`` flag of :class:`gradtrack.trackers.base.TrackResult`.

A tracker's raw score (the sigmoid of its response peak) is not a probability: it sits high on clutter and
varies per network.  A :class:`Calibrator` maps the raw score to ``P(IoU(box, target) > 0.5)``, fitted by
``scripts/calibrate.py`` on the ``holdout`` split of ``configs/splits/train_holdout.json`` (train-split
sequences the shipped weights never trained on; ``val`` is never used for fitting).  Two models:

* ``"isotonic"`` (default): pool-adjacent-violators on the raw score, a monotone step function, evaluated
  with linear interpolation between the pooled blocks' ends (:func:`fit_isotonic`);
* ``"logistic"`` (Platt scaling): ``sigmoid(a + b logit(raw))`` fitted by Newton's method (:func:`fit_logistic`).

Storage: the calibrator is a plain dict (lists and floats) under ``meta["calibration"]`` of the weights
file, so ``torch.load(weights_only=True)`` still reads it and a new weights file (retraining) drops a stale
calibration automatically.  :func:`for_source` reads it for a tracker's ``weights_source``.

Without a calibrator (random weights, a checkpoint never calibrated, the OpenCV trackers) ``score`` stays
the raw score, ``extra["calibrated"]`` is False and ``lost`` comes from the fixed
:data:`UNCALIBRATED_LOST_THRESHOLD` on the raw score (OpenCV trackers: ``lost = not ok``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Calibrator", "UNCALIBRATED_LOST_THRESHOLD", "expected_calibration_error", "fit_calibrator",
           "fit_isotonic", "fit_logistic", "for_source", "pav"]

#: ``lost = raw score < this`` for a tracker without a calibrator (the raw score is a sigmoid of the peak)
UNCALIBRATED_LOST_THRESHOLD = 0.5
VERSION = 1
_EPS = 1e-4


def pav(y, w=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on values ``y`` already ordered by the feature: ``(block values, block start
    index, block end index (inclusive))``; the block values are non-decreasing and minimise the weighted
    squared error to ``y``."""
    y = np.asarray(y, dtype=np.float64).ravel()
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64).ravel()
    if y.size == 0 or y.shape != w.shape:
        raise ValueError(f"pav needs a non-empty y and weights of the same length, got {y.size} and {w.size}")
    vals, wts, starts, ends = [], [], [], []
    for i in range(y.size):
        vals.append(y[i]); wts.append(w[i]); starts.append(i); ends.append(i)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            e = ends[-1]
            vals.pop(); wts.pop(); starts.pop(); ends.pop()
            vals[-1], wts[-1], ends[-1] = v, wsum, e
    return np.array(vals), np.array(starts), np.array(ends)


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    """Raw score -> calibrated probability; ``lost`` when that probability is below ``lost_threshold``."""

    kind: str  # "isotonic" | "logistic"
    params: dict
    lost_threshold: float = 0.5
    info: dict = field(default_factory=dict)  # what it was fitted on (tracker, split, frames, ...)

    def __post_init__(self):
        if self.kind == "isotonic":
            x, y = (np.asarray(self.params.get(k, []), dtype=np.float64) for k in ("x", "y"))
            if x.size == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12):
                raise ValueError("isotonic calibrator needs non-empty, equally long, non-decreasing 'x' and 'y'")
            self._x, self._y = x, np.clip(y, _EPS, 1 - _EPS)
        elif self.kind == "logistic":
            if not {"a", "b"} <= set(self.params):
                raise ValueError("logistic calibrator needs parameters 'a' and 'b'")
        else:
            raise ValueError(f"unknown calibrator kind {self.kind!r} (isotonic or logistic)")
        if not 0.0 <= float(self.lost_threshold) <= 1.0:
            raise ValueError(f"lost_threshold must be in [0, 1], got {self.lost_threshold}")

    def predict(self, raw):
        """Calibrated probability for raw score(s) ``raw`` (scalar in, float out; array in, array out)."""
        r = np.asarray(raw, dtype=np.float64)
        if self.kind == "isotonic":
            p = np.interp(r, self._x, self._y)
        else:
            z = self.params["a"] + self.params["b"] * _logit(r)
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
            p = np.clip(p, _EPS, 1 - _EPS)
        return float(p) if p.ndim == 0 else p

    def to_dict(self) -> dict:
        return {"version": VERSION, "kind": self.kind, "feature": "raw_score",
                "params": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.params.items()},
                "lost_threshold": float(self.lost_threshold), "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        if not isinstance(d, dict) or d.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} calibrator: {str(d)[:80]}")
        return cls(kind=d["kind"], params=dict(d["params"]), lost_threshold=float(d.get("lost_threshold", 0.5)),
                   info=dict(d.get("info", {})))


def _check_xy(x, y):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or x.shape != y.shape:
        raise ValueError(f"calibration needs equally long, non-empty features and labels, got {x.size} and {y.size}")
    if not np.isfinite(x).all():
        raise ValueError("calibration features contain NaN or infinite values")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("calibration labels must be 0 or 1")
    return x, y


def fit_isotonic(x, y) -> dict:
    """Isotonic regression of binary ``y`` on ``x``: ``{"x": [...], "y": [...]}`` (each pooled block gives
    its first and last feature value with the block's mean, ties in ``x`` are pooled first)."""
    x, y = _check_xy(x, y)
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order], y[order]
    ux, inv, counts = np.unique(xs, return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=ys) / counts
    vals, starts, ends = pav(means, counts)
    px, py = [], []
    for v, s, e in zip(vals, starts, ends):
        px += [ux[s], ux[e]] if e > s else [ux[s]]
        py += [v, v] if e > s else [v]
    return {"x": [float(v) for v in px], "y": [float(v) for v in py]}


def fit_logistic(x, y, iters: int = 50, l2: float = 1e-3) -> dict:
    """Platt scaling: ``P = sigmoid(a + b logit(x))`` by Newton's method (small L2 on ``b``): ``{"a", "b"}``."""
    x, y = _check_xy(x, y)
    f = _logit(x)
    X = np.stack([np.ones_like(f), f], 1)
    beta = np.zeros(2)
    reg = np.diag([0.0, l2])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -60, 60)))
        g = X.T @ (p - y) + reg @ beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + reg + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, g)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return {"a": float(beta[0]), "b": float(beta[1])}


def best_lost_threshold(p, lost_target) -> float:
    """The threshold on calibrated ``p`` whose ``lost = p < t`` has the best F1 against ``lost_target``."""
    p = np.asarray(p, dtype=np.float64)
    t_ = np.asarray(lost_target, dtype=bool)
    if not t_.any():
        return 0.5
    best, best_f = 0.5, -1.0
    for t in np.linspace(0.02, 0.9, 45):
        pred = p < t
        tp = float((pred & t_).sum())
        f1 = 2 * tp / max(pred.sum() + t_.sum(), 1)
        if f1 > best_f + 1e-12:
            best, best_f = float(t), f1
    return best


def fit_calibrator(raw, correct, lost_target=None, kind: str = "isotonic", info: dict | None = None) -> Calibrator:
    """Fit a :class:`Calibrator` of ``kind`` on raw scores and ``correct = IoU > 0.5``; ``lost_target``
    (absent or IoU < 0.1) sets the ``lost`` threshold (best F1), else 0.5."""
    if kind == "isotonic":
        params = fit_isotonic(raw, correct)
    elif kind == "logistic":
        params = fit_logistic(raw, correct)
    else:
        raise ValueError(f"unknown calibrator kind {kind!r} (isotonic or logistic)")
    cal = Calibrator(kind, params, 0.5, dict(info or {}))
    if lost_target is not None:
        cal.lost_threshold = best_lost_threshold(cal.predict(np.asarray(raw, dtype=np.float64)), lost_target)
    return cal


def expected_calibration_error(p, y, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width bins on [0, 1]: ``sum_b n_b / N |mean(y_b) - mean(p_b)|``."""
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if p.size == 0 or p.shape != y.shape:
        raise ValueError("ECE needs equally long, non-empty probabilities and labels")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("ECE needs probabilities in [0, 1]")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.sum() / p.size * abs(y[m].mean() - p[m].mean())
    return float(ece)


def reliability_bins(p, y, bins: int = 10):
    """``(mean confidence, accuracy, count)`` per equal-width bin (NaN for empty bins)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    idx = np.minimum((p * bins).astype(int), bins - 1)
    conf, acc, cnt = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins, int)
    for b in range(bins):
        m = idx == b
        cnt[b] = int(m.sum())
        if cnt[b]:
            conf[b], acc[b] = p[m].mean(), y[m].mean()
    return conf, acc, cnt


_CACHE: dict = {}


def for_source(source) -> Calibrator | None:
    """The calibrator stored in the weights file ``source`` (a tracker's ``weights_source``), or ``None``
    (``"random"``, ``"module"``, a file without ``meta["calibration"]``).  Cached per file version."""
    if not isinstance(source, (str, Path)) or str(source) in ("random", "module", ""):
        return None
    path = Path(source)
    if not path.is_file():
        return None
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        import torch

        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip checkpoint (mmap needs one): read it plainly
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        d = (ckpt.get("meta") or {}).get("calibration") if isinstance(ckpt, dict) else None
        _CACHE[key] = Calibrator.from_dict(d) if d else None
    return _CACHE[key]


def write_to_checkpoint(path, cal: Calibrator | None) -> Path:
    """Store ``cal`` (``None``: remove) as ``meta["calibration"]`` of the weights file ``path``, rewriting
    it atomically; the state dict and every other entry are kept as they are (same dtypes)."""
    import torch

    path = Path(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a gradtrack weights file")
    meta = dict(ckpt.get("meta") or {})
    if cal is None:
        meta.pop("calibration", None)
    else:
        meta["calibration"] = cal.to_dict()
    ckpt["meta"] = meta
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def sigmoid_inverse(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
