"""Nearest-neighbour resampling of label maps between grids through their affines (LPS mm)."""

from __future__ import annotations

import numpy as np

from medviz.types import Volume


# ----------------------------------------------------------------------------- reference masks
def resample_labels(src: np.ndarray, src_affine: np.ndarray, volume: Volume) -> np.ndarray:
    """Nearest-neighbour labels of ``src`` at every voxel centre of ``volume``.

    Args:
        src: 3D label array indexed ``(a, b, c)``.
        src_affine: 4x4 mapping ``(a, b, c, 1)`` to LPS mm.
        volume: the target grid.

    Returns:
        ``(Z, Y, X)`` labels (0 outside ``src``).
    """
    m = np.linalg.inv(np.asarray(src_affine, dtype=np.float64)) @ np.asarray(volume.affine, dtype=np.float64)
    src = np.asarray(src)
    lin = m[:3, :3]
    nz = np.abs(lin) > 1e-6 * np.abs(lin).max()
    if (nz.sum(axis=1) == 1).all() and (nz.sum(axis=0) == 1).all():  # axis-aligned: separable lookup
        zyx_len = volume.shape  # target axes x, y, z = array axes 2, 1, 0
        idx, ok = [], []
        for r in range(3):
            c = int(np.argmax(nz[r]))
            a = np.rint(lin[r, c] * np.arange(zyx_len[2 - c]) + m[r, 3]).astype(np.int64)
            idx.append((c, a))
            ok.append((a >= 0) & (a < src.shape[r]))
        # out[z, y, x] = src[a0[t(c0)], a1[t(c1)], a2[t(c2)]] where t(c) is target index along x/y/z = c
        grids = [None, None, None]
        valid = np.ones(volume.shape, dtype=bool)
        for r, (c, a) in enumerate(idx):
            shape = [1, 1, 1]
            shape[2 - c] = -1
            grids[r] = np.clip(a, 0, src.shape[r] - 1).reshape(shape)
            valid &= ok[r].reshape(shape)
        return np.where(valid, src[grids[0], grids[1], grids[2]], 0).astype(src.dtype)
    out = np.zeros(volume.shape, dtype=src.dtype)
    yy, xx = np.meshgrid(np.arange(volume.shape[1]), np.arange(volume.shape[2]), indexing="ij")
    for z in range(volume.shape[0]):  # general (oblique) case, one slice at a time
        xyz1 = np.stack([xx, yy, np.full_like(xx, z), np.ones_like(xx)], axis=-1).reshape(-1, 4)
        abc = np.rint(xyz1 @ m[:3].T).astype(np.int64)
        good = np.all((abc >= 0) & (abc < np.asarray(src.shape)), axis=1)
        sl = np.zeros(abc.shape[0], dtype=src.dtype)
        sl[good] = src[abc[good, 0], abc[good, 1], abc[good, 2]]
        out[z] = sl.reshape(volume.shape[1:])
    return out
