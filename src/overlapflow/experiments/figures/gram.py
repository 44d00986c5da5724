"""Fig 11: the structure of the overlap Gram map, linear vs nonlinear."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ...model import LowRankRNN
from ...overlaps import Overlaps, canonical_pairs, visible_mask
from ...precision import float64
from .data import write_data
from .spec import KeyNumber

GRAM_NETWORKS = {"linear": LowRankRNN(rank=1), "erf": LowRankRNN(rank=1, phi="erf")}


@float64
def run_gram_map(settings: None, out: Path, progress: bool = False) -> dict[str, xr.Dataset]:
    """Fig 11's data, ``gram_map.nc``: the structural pattern of :func:`~overlapflow.gram_map.gram_map`
    for rank-1 linear and erf networks, (network, overlap, gradient), gradients over every overlap
    (columns of invisible overlaps are False), with each entry's ``coefficient`` (a sum of overlaps)."""
    from ...gram_map import gram_map

    patterns, coefficients = [], []
    for rnn in GRAM_NETWORKS.values():
        g = gram_map(rnn)
        labels = list(g.overlap.values)
        pattern = np.zeros((len(labels), len(labels)), dtype=bool)
        coefficient = np.full(pattern.shape, "", dtype=object)
        columns = [labels.index(label) for label in g.gradient.values]
        pattern[:, columns] = g.values
        coefficient[:, columns] = g.coefficient.values
        patterns.append(pattern)
        coefficients.append(coefficient.astype(str))
    data = xr.Dataset(
        {
            "pattern": (("network", "overlap", "gradient"), np.stack(patterns)),
            "coefficient": (("network", "overlap", "gradient"), np.stack(coefficients)),
        },
        coords={"network": list(GRAM_NETWORKS), "overlap": labels, "gradient": labels},
        attrs={"convention": g.attrs["convention"]},
    )
    return {"gram_map": write_data(out, "gram_map", data)}


def _gram_map_error(rnn: LowRankRNN) -> float:
    """max |-eta G d - dS/dt| at random overlaps S and a random visible Gamma (eta = 1): G (numeric, at S)
    is the gradient flow's map from the visible gradients d to the velocity of every overlap."""
    from ...flow import flow_velocity
    from ...gram_map import gradient_vector, gram_map

    key = jax.random.key(0)
    S = np.asarray(Overlaps.from_params(rnn, rnn.init(key, N=50, dtype=jnp.float64)).matrix)
    A = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), S.shape, dtype=jnp.float64))
    Gamma = (A + A.T) / 2 * visible_mask(rnn)
    velocity = np.asarray(flow_velocity(jnp.asarray(S), jnp.asarray(Gamma), 1.0))
    rows, cols = zip(*canonical_pairs(rnn.n_vectors), strict=True)
    predicted = -gram_map(rnn, S).values @ gradient_vector(rnn, Gamma)
    return float(np.max(np.abs(predicted - velocity[list(rows), list(cols)])))


@float64
def draw_fig11(data, settings: None, out):
    from ...gram_map import plot_gram_map

    d = data["gram_map"]
    fig = plot_gram_map(GRAM_NETWORKS["linear"], GRAM_NETWORKS["erf"])
    for ax in fig.axes:  # image panels: rows are overlap velocities, columns the gradients
        ax.set_xlabel(r"gradient $d_{cd} = \partial l / \partial \sigma_{cd}$ (column; hatched: loss-invisible)")
        ax.set_ylabel(r"velocity $d\sigma_{ab}/dt$ of overlap (row)")
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.6)  # room for the rotated tick labels, the axis label and the title
    fig.suptitle("Fig 11: the Gram map, which visible gradients move which overlaps (rank 1)")
    numbers = [KeyNumber("pattern size (overlaps x gradients)", d.sizes["overlap"], "10 x 10", "each network")]
    paper_visible = {"linear": 4, "erf": 7}
    for name, rnn in GRAM_NETWORKS.items():
        pattern = d.pattern.sel(network=name).values  # rows and columns in canonical order
        mask = visible_mask(rnn)
        invisible = [k for k, (i, j) in enumerate(canonical_pairs(rnn.n_vectors)) if not mask[i, j]]
        numbers += [
            KeyNumber(f"visible gradients (columns), {name}", int(pattern.any(axis=0).sum()), paper_visible[name]),
            KeyNumber(f"non-zero entries, {name}", int(pattern.sum())),
            KeyNumber(
                f"invisible overlaps moved by learning (non-zero rows), {name}",
                int(pattern[invisible].any(axis=1).sum()),
                None,
                f"of {len(invisible)}",
            ),
            KeyNumber(
                f"max |-eta G d - dS/dt| at random S, Gamma, {name}",
                _gram_map_error(rnn),
                0.0,
                "G is the gradient flow's map",
            ),
        ]
    return fig, numbers
