"""Gauss-Hermite rules for N(0, 1) and their products: the nodes of particle clouds and of mixture splits."""

from __future__ import annotations

import numpy as np


def gauss_hermite(m: int) -> tuple[np.ndarray, np.ndarray]:
    """m-node Gauss-Hermite rule for N(0, 1): nodes (m,) exactly symmetric, weights (m,) summing to 1.
    Exact for polynomials of degree < 2 m."""
    x, w = np.polynomial.hermite_e.hermegauss(m)
    x = (x - x[::-1]) / 2
    return x, w / w.sum()


def product_grid(counts) -> tuple[np.ndarray, np.ndarray]:
    """The product of Gauss-Hermite rules with ``counts`` nodes per direction for N(0, I_d):
    nodes xi (n, d) and weights (n,), n = prod(counts)."""
    rules = [gauss_hermite(m) for m in counts]
    grids = np.meshgrid(*(x for x, _ in rules), indexing="ij")
    xi = np.stack([g.ravel() for g in grids], axis=1).reshape(-1, len(counts))
    weights = np.prod(np.meshgrid(*(w for _, w in rules), indexing="ij"), axis=0).ravel()
    return xi, weights.reshape(-1)
