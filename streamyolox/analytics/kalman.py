"""ByteTrack's motion model: a constant-velocity Kalman filter on (cx, cy, aspect, h), batched over tracks.

State ``(cx, cy, a, h, vcx, vcy, va, vh)`` with ``a = w / h``; one frame per step. The noise model is
ByteTrack's (inherited from DeepSORT): standard deviations proportional to the box height, weights 1/20 for
positions and 1/160 for velocities, a fixed 1e-2 (process) / 1e-1 (measurement) for the aspect ratio,
and at start twice the position and ten times the velocity deviations.

Written out on numpy on purpose: the filter is about thirty lines of linear algebra, ByteTrack's
height-dependent noise has to be rebuilt every step (filterpy's `KalmanFilter` holds one fixed Q/R per
filter object and works one track at a time), and here every track of a frame is predicted in one
batched call.
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160
NDIM = 4  # measured: cx, cy, a, h

# x_{k+1} = F x_k (dt = 1 frame): positions move by their velocities.
MOTION = np.eye(2 * NDIM)
MOTION[:NDIM, NDIM:] = np.eye(NDIM)


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes -> (N, 4) (cx, cy, w / h, h)."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    # a degenerate box (h = 0) would make the aspect infinite: clamp h to a tiny positive height
    h = np.maximum(h, 1e-6)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) states or measurements -> (N, 4) corner boxes."""
    xyah = np.asarray(xyah, np.float64).reshape(len(xyah), -1)
    w, h = xyah[:, 2] * xyah[:, 3], xyah[:, 3]
    cx, cy = xyah[:, 0], xyah[:, 1]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _diag(std: np.ndarray) -> np.ndarray:
    """(N, D) standard deviations -> (N, D, D) diagonal covariances."""
    n, d = std.shape
    out = np.zeros((n, d, d))
    out[:, np.arange(d), np.arange(d)] = std**2
    return out


def _per_height(h: np.ndarray, weights: tuple[float, float, float, float],
                aspect: float) -> np.ndarray:
    """(N, 4) deviations ``(w0 h, w1 h, aspect, w3 h)`` for heights `h` (N,)."""
    std = np.outer(h, np.asarray(weights))
    std[:, 2] = aspect
    return std


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyah measurements: mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
    z = np.asarray(measurements, np.float64).reshape(-1, NDIM)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    h = z[:, 3]
    wp, wv = 2 * STD_WEIGHT_POSITION, 10 * STD_WEIGHT_VELOCITY
    std = np.concatenate([_per_height(h, (wp, wp, 0, wp), 1e-2),
                          _per_height(h, (wv, wv, 0, wv), 1e-5)], axis=1)
    return mean, _diag(std)


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: ``x = F x``, ``P = F P F^T + Q`` with Q from each track's current height."""
    h = mean[:, 3]
    wp, wv = STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY
    std = np.concatenate([_per_height(h, (wp, wp, 0, wp), 1e-2),
                          _per_height(h, (wv, wv, 0, wv), 1e-5)], axis=1)
    new_mean = mean @ MOTION.T
    new_cov = MOTION @ cov @ MOTION.T + _diag(std)
    return new_mean, new_cov


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Into measurement space: ``H x`` and ``S = H P H^T + R`` (H keeps the first four components)."""
    h = mean[:, 3]
    std = _per_height(h, (STD_WEIGHT_POSITION, STD_WEIGHT_POSITION, 0, STD_WEIGHT_POSITION), 1e-1)
    return mean[:, :NDIM], cov[:, :NDIM, :NDIM] + _diag(std)


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct (N, 8) states with (N, 4) xyah measurements.

    ``K = P H^T S^-1`` is obtained by solving ``S K^T = H P`` (S is symmetric positive definite; a solve is
    steadier than an inverse), then ``x += K (z - H x)`` and ``P -= K S K^T``.
    """
    z = np.asarray(measurements, np.float64).reshape(-1, NDIM)
    projected_mean, s = project(mean, cov)
    gain = np.linalg.solve(s, cov[:, :NDIM, :]).transpose(0, 2, 1)  # (N, 8, 4)
    innovation = z - projected_mean
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
