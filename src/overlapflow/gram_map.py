r"""The Gram map: which visible gradients move which overlaps (theory section 5, paper fig 11).

To first order (gradient flow), learning moves the overlaps by

    dS/dt = -2 eta (S Gamma + Gamma S),      Gamma = sym(dl/dS),

linear in Gamma, and Gamma is supported on the loss-visible entries. In terms of the scalar gradients
d_cd = dl/dsigma_cd of the visible overlaps (a symmetric pair c != d stands twice in S, so
Gamma_cd = Gamma_dc = d_cd / 2; a diagonal entry stands once, Gamma_cc = d_cc),

    dsigma_ab/dt = -eta sum_{(c, d) visible} G[ab, cd] d_cd,

    G[ab, cd] = S_ac delta_db + S_ad delta_cb + delta_ac S_db + delta_ad S_cb      (c != d)
    G[ab, aa] = 2 (S_ac delta_cb + delta_ac S_cb)                                  (c = d)

G is the paper's "Gram matrix" G(theta): each entry is a sum of overlaps. Rank 1, linear:
dsigma_zm/dt = -eta [ (mm + zz) d_zm + um d_zu + zv d_vm ]. Invisible rows are not zero: learning moves
invisible overlaps. Rows: every distinct overlap (canonical order, ``overlapflow.overlaps.canonical_pairs``);
columns: the visible ones.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import xarray as xr

from .model import LowRankRNN
from .overlaps import Overlaps, canonical_pairs, check_gram, pair_label, visible_pairs


def _terms(a: int, b: int, c: int, d: int) -> Counter:
    """G[ab, cd] as a multiset of S index pairs (each term one overlap, multiplicity = coefficient)."""
    terms: Counter = Counter()
    factor = 2 if c == d else 1
    pairs = [(c, d)] if c == d else [(c, d), (d, c)]
    for x, y in pairs:  # E = sum over the pair's entries e_x e_y^T;  (S E + E S)_ab = S_ax [y == b] + [a == x] S_yb
        if y == b:
            terms[(max(a, x), min(a, x))] += factor
        if a == x:
            terms[(max(y, b), min(y, b))] += factor
    return terms


def _coefficient_text(rnn: LowRankRNN, terms: Counter) -> str:
    parts = sorted((pair_label(rnn, i, j), n) for (i, j), n in terms.items())
    return " + ".join(label if n == 1 else f"{n} {label}" for label, n in parts)


def gram_map(rnn: LowRankRNN, S=None) -> xr.DataArray:
    r"""The Gram map G[overlap, gradient]: dsigma_ab/dt = -eta sum_cd G[ab, cd] d_cd (module docstring).

    Args:
        S: None for the structural pattern; or (P, P) overlaps (:class:`~overlapflow.Overlaps` or array)
            for the numeric map at S.

    Returns:
        DataArray with dims (``overlap``, ``gradient``), shape (P (P + 1) / 2, n_visible) (rank 1: 10 x 4
        linear, 10 x 7 nonlinear; rank 2 linear: 21 x 9); coordinates: overlap labels (all distinct
        overlaps, canonical order), gradient labels (visible overlaps), and ``coefficient`` (overlap,
        gradient): the entry as a sum of overlaps, e.g. ``"mm + zz"``. Values: bool (entry not identically
        zero) when S is None, else float64 G at S.
    """
    P = rnn.n_vectors
    rows, cols = canonical_pairs(P), visible_pairs(rnn)
    coefficient = np.empty((len(rows), len(cols)), dtype=object)
    terms = [[_terms(a, b, c, d) for c, d in cols] for a, b in rows]
    for r, row in enumerate(terms):
        for k, t in enumerate(row):
            coefficient[r, k] = _coefficient_text(rnn, t)
    if S is None:
        values = np.array([[bool(t) for t in row] for row in terms], dtype=bool).reshape(len(rows), len(cols))
        kind = "pattern"
    else:
        S = np.asarray(S.matrix if isinstance(S, Overlaps) else S, dtype=np.float64)
        if S.shape != (P, P):
            raise ValueError(f"S: shape {S.shape}; must be ({P}, {P}) for this network")
        check_gram(S)
        values = np.array(
            [[sum(n * S[i, j] for (i, j), n in t.items()) for t in row] for row in terms], dtype=np.float64
        )
        values = values.reshape(len(rows), len(cols))
        kind = "numeric"
    return xr.DataArray(
        values,
        dims=("overlap", "gradient"),
        coords={
            "overlap": [pair_label(rnn, i, j) for i, j in rows],
            "gradient": [pair_label(rnn, i, j) for i, j in cols],
            "coefficient": (("overlap", "gradient"), coefficient.astype(str)),
        },
        name="gram_map",
        attrs={
            "kind": kind,
            "convention": "dsigma_ab/dt = -eta sum_cd G[ab, cd] dl/dsigma_cd (first order / gradient flow)",
            **{f"rnn_{k}": v for k, v in rnn.describe().items()},
        },
    )


def gradient_vector(rnn: LowRankRNN, Gamma) -> np.ndarray:
    r"""The scalar visible gradients d_cd = dl/dsigma_cd from Gamma (P, P): 2 Gamma_cd (c != d), Gamma_cc.

    Ordered as the ``gradient`` coordinate of :func:`gram_map`, so -eta G d is the velocity of the overlaps.
    """
    Gamma = np.asarray(Gamma, dtype=np.float64)
    if Gamma.shape != (rnn.n_vectors, rnn.n_vectors):
        raise ValueError(f"Gamma: shape {Gamma.shape}; must be ({rnn.n_vectors}, {rnn.n_vectors}) for this network")
    return np.array([Gamma[c, d] * (1 if c == d else 2) for c, d in visible_pairs(rnn)])


def plot_gram_map(rnn_linear: LowRankRNN, rnn_nonlinear: LowRankRNN, path=None, annotate: bool = True):
    r"""Draw the Gram-map patterns of two networks side by side (paper fig 11) and return the Figure.

    Rows are overlaps sigma_ab, columns the gradients d_cd over *all* overlaps (so both panels share the
    axes: rank 1 gives two 10 x 10 panels); columns of loss-invisible overlaps carry no gradient and are
    hatched grey. Filled cells: G[ab, cd] is not identically zero; with ``annotate`` each is labelled with
    its coefficient (e.g. ``mm + zz``).

    Args:
        rnn_linear: the architecture of the left panel.
        rnn_nonlinear: the architecture of the right panel (any two with the same vector names work).
        path: if given, save there (format from the extension).

    Returns:
        :class:`matplotlib.figure.Figure` with two axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    for field, rnn in (("rnn_linear", rnn_linear), ("rnn_nonlinear", rnn_nonlinear)):
        if not isinstance(rnn, LowRankRNN):
            raise TypeError(f"{field} = {rnn!r}: must be an overlapflow.LowRankRNN")
    P = rnn_linear.n_vectors
    n = P * (P + 1) // 2
    size = max(5.0, 0.55 * n)
    fig = Figure(figsize=(2 * size + 1, size + 0.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, rnn in zip(axes, (rnn_linear, rnn_nonlinear), strict=True):
        pattern = gram_map(rnn)
        labels = [pair_label(rnn, i, j) for i, j in canonical_pairs(rnn.n_vectors)]
        full = np.zeros((len(labels), len(labels)))
        gradients = list(pattern.gradient.values)
        for k, g in enumerate(gradients):
            full[:, labels.index(g)] = pattern.values[:, k]
        ax.imshow(full, cmap="Greys", vmin=0, vmax=1.6, aspect="equal")
        for col, label in enumerate(labels):
            if label not in gradients:
                ax.add_patch(
                    Rectangle((col - 0.5, -0.5), 1, len(labels), facecolor="0.92", edgecolor="0.75", hatch="//", lw=0)
                )
        if annotate:
            for r in range(len(labels)):
                for k, g in enumerate(gradients):
                    if pattern.values[r, k]:
                        ax.text(
                            labels.index(g),
                            r,
                            str(pattern.coefficient.values[r, k]),
                            ha="center",
                            va="center",
                            color="w",
                            fontsize=6,
                        )
        ax.set_xticks(range(len(labels)), [rf"$d_{{{x}}}$" for x in labels], rotation=90)
        ax.set_yticks(range(len(labels)), [rf"$\sigma_{{{x}}}$" for x in labels])
        ax.set_xlabel("gradient of (visible) overlap")
        ax.set_ylabel("overlap velocity")
        ax.set_title(f"{rnn.nonlinearity.name}, rank {rnn.rank}: {len(gradients)} visible gradients")
    if path is not None:
        path = Path(path)
        ext = path.suffix.lower().lstrip(".")
        supported = fig.canvas.get_supported_filetypes()
        if ext not in supported:
            raise ValueError(f"path = {str(path)!r}: unknown figure format {ext!r}; allowed: {sorted(supported)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    return fig
