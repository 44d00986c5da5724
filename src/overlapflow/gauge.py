r"""The gauge of low-rank networks: which visible overlaps the function fixes, and which no loss does.

The action. For any invertible R x R matrix G,

    U -> U G,    V -> V G^{-T}

leaves W = U V^T / N, the inputs M, the readouts Z, and so the activity and the output unchanged.
On theta = [M | U | V | Z] (N, P) it is theta -> theta T with

    T = blockdiag(I_{n_in}, G, G^{-T}, I_{n_out})        (P, P)

and on overlaps S = theta^T theta / N it is S -> T^T S T (:func:`transform`). Block by block
(A = S_VU, "U-side" blocks multiply G from the right, "V-side" blocks G^{-1} from the left):

    S_ZU -> S_ZU G,  S_MU -> S_MU G,  S_VM -> G^{-1} S_VM,  S_VU -> G^{-1} S_VU G,  S_UU -> G^T S_UU G,

and S_ZM, S_MM are unchanged. The reduced dynamics (:func:`~overlapflow.meanfield.meanfield_forward`)
only read these combinations, so they are invariant too.

The rank argument. The visible overlaps (:func:`~overlapflow.overlaps.visible_mask`: S_ZM, S_ZU, S_VM,
S_VU, and for nonlinear phi S_MM, S_MU, S_UU) form a space of dimension n_visible on which GL(R) acts.
At a generic point the action is free: a G that fixes S_VM's first column v and commutes with S_VU fixes
the Krylov basis K_V = [v, A v, ..., A^{R-1} v], so G = I (if n_in = 0, the same with the row z_1 S_ZU and
its Krylov rows). The orbits therefore have dimension R^2, and the functions of the visible overlaps that
are constant on orbits (the network's function) have n_visible - R^2 independent coordinates: the
outputs' Jacobian with respect to the visible overlaps has rank n_visible - R^2 (rank 1 / 2, one input,
one output: 3 of 4, 6 of 7 with erf, 5 of 9, 11 of 15 with erf).

Function coordinates (:func:`function_coordinates`). A fixed ordered list of candidates, each invariant by
construction (U-side rows x times powers of A times V-side columns y, traces, congruences of S_UU):

1. entries of S_ZM;
2. (nonlinear) entries of S_MM, upper triangle;
3. tr(A^k), k = 1..R (the similarity invariants of A = S_VU);
4. for k = 0..2R-1: x A^k y for every U-side row x (rows of S_ZU; nonlinear: also rows of S_MU) and
   every V-side column y (columns of S_VM);
5. (nonlinear) y_i^T (A^T)^j S_UU A^k y_l for j <= k < R (i <= l when j = k);
6. only where a side has no vectors: if n_in = 0, the columns of K_z^{-1} (K_z with rows z_1 U (VU)^i,
   i < R) serve as V-side columns (K_z -> K_z G, so K_z^{-1} -> G^{-1} K_z^{-1}); if a linear network
   has n_out = 0, the rows of K_m^{-1} (K_m with columns (VU)^i V m_1) serve as U-side rows.

With the Krylov frames these generate all invariants generically (x K_V, K_V^T S_UU K_V and the
characteristic polynomial of A fix the orbit). Once per architecture a maximal independent subset is
selected greedily, in this order, by the rank of the candidates' Jacobian with respect to the visible
overlaps at a fixed random generic S; it has exactly n_visible - R^2 members (checked).

Gauge coordinates (:func:`gauge_coordinates`): R^2 visible overlaps that complete the function coordinates
to local coordinates of the visible overlaps (U-side diagonal entries such as uu first, then the others in
label order). Rank 1 erf: function zm, mm, vu, zu vm, mu vm, vm uu vm; gauge uu (the scale of u against v).
Rank 1 linear: function zm, vu, zu vm; gauge zu.

Labels are written as chains of vector names: ``"zu vm"`` = (z.u/N)(v.m/N); at rank >= 2 with the blocks
in capitals, ``"z U (VU)^2 V m"`` = S_zU S_VU^2 S_Vm, ``"tr (VU)^2"``, ``"(V m1)' UU ((VU) V m2)"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .model import LowRankRNN
from .overlaps import Overlaps, pair_label, visible_pairs
from .precision import float64

#: Condition number of G above which :func:`transform` refuses it as singular.
MAX_CONDITION = 1e12

#: Residual (of a unit-norm Jacobian row, after projecting out the rows already selected) above which a
#: candidate counts as independent in the greedy selections.
RANK_TOL = 1e-7

#: Seed and size (N = GENERIC_N_FACTOR * P) of the random network whose overlaps are the generic point.
GENERIC_SEED = 0
GENERIC_N_FACTOR = 4


# ---------------------------------------------------------------------------------------------- the action
@float64
def gauge_matrix(rnn: LowRankRNN, G: Float[ArrayLike, "R R"]) -> Float[Array, "P P"]:
    """T = blockdiag(I_{n_in}, G, G^{-T}, I_{n_out}) (P, P) from G (R, R), validated as in :func:`transform`."""
    G = _check_G(rnn, G)
    sl, P = rnn.slices, rnn.n_vectors
    T = jnp.eye(P, dtype=G.dtype)
    T = T.at[sl["U"], sl["U"]].set(G)
    return T.at[sl["V"], sl["V"]].set(jnp.linalg.inv(G).T)


@float64
def transform(
    rnn: LowRankRNN, S: Overlaps | Float[ArrayLike, "*batch P P"], G: Float[ArrayLike, "R R"]
) -> Overlaps | Float[Array, "*batch P P"]:
    """The gauge action on overlaps: S (..., P, P) -> T^T S T, T = blockdiag(I, G, G^{-T}, I).

    Args:
        S: overlaps (..., P, P) (an array, or an :class:`~overlapflow.Overlaps`, returned as one).
        G: an invertible (R, R) matrix (the same for the whole batch).

    Returns:
        The transformed overlaps (..., P, P) as a float64 JAX array, the overlaps of theta with
        U -> U G, V -> V G^{-T}.

    Raises:
        ValueError: S or G of the wrong shape, G not finite, or G singular (condition number > 1e12).
    """
    if isinstance(S, Overlaps):
        return Overlaps(transform(rnn, S.matrix, G), S.names)
    S = _check_S(rnn, S)
    T = gauge_matrix(rnn, G).astype(S.dtype)
    return jnp.einsum("ki,...kl,lj->...ij", T, S, T)


def _check_S(rnn: LowRankRNN, S) -> jax.Array:
    S = jnp.asarray(S.matrix if isinstance(S, Overlaps) else S, dtype=jnp.float64)
    P = rnn.n_vectors
    if S.ndim < 2 or S.shape[-2:] != (P, P):
        raise ValueError(f"S: shape {tuple(S.shape)}; must be (..., P, P) with P = {P} for this network")
    return S


def _check_G(rnn: LowRankRNN, G) -> jax.Array:
    R = rnn.rank
    shape = tuple(np.shape(G))
    if shape != (R, R):
        raise ValueError(f"G: shape {shape}; must be (R, R) = ({R}, {R}) for this network")
    if not isinstance(G, jax.core.Tracer):
        values = np.asarray(G, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("G: contains NaN or Inf; must be a finite invertible (R, R) matrix")
        cond = float(np.linalg.cond(values))
        if not cond <= MAX_CONDITION:
            raise ValueError(f"G: singular (condition number {cond:.3g}); the gauge acts by invertible R x R matrices")
    return jnp.asarray(G, dtype=jnp.float64)


# ---------------------------------------------------------------------------------------------- candidates
Candidate = tuple[str, Callable[[dict], jax.Array]]


def _names(rnn: LowRankRNN) -> dict[str, tuple[str, ...]]:
    names, sl = rnn.vector_names, rnn.slices
    return {block: names[sl[block]] for block in ("M", "U", "V", "Z")}


def _blocks(rnn: LowRankRNN, S, xp=jnp) -> dict:
    """The visible blocks of one S (P, P), powers of A = S_VU, and the U-side rows / V-side columns.

    ``xp`` is ``jax.numpy`` or ``numpy`` (the selection differentiates in complex numpy by complex step)."""
    sl, R = rnn.slices, rnn.rank
    A = S[sl["V"], sl["U"]]
    powers = [xp.eye(R, dtype=S.dtype)]
    for _ in range(2 * R - 1):
        powers.append(powers[-1] @ A)
    b = {
        "ZM": S[sl["Z"], sl["M"]],
        "MM": S[sl["M"], sl["M"]],
        "ZU": S[sl["Z"], sl["U"]],
        "MU": S[sl["M"], sl["U"]],
        "VM": S[sl["V"], sl["M"]],
        "UU": S[sl["U"], sl["U"]],
        "A": A,
        "pow": powers,
    }
    rows = list(b["ZU"]) + (list(b["MU"]) if not rnn.is_linear else [])
    cols = list(b["VM"].T)
    if rnn.n_in == 0:  # V-side columns from the Krylov rows of z_1: K_z^{-1}
        K = xp.stack([b["ZU"][0] @ powers[i] for i in range(R)])
        cols = list(xp.linalg.inv(K).T)
    if not rows:  # linear, n_out = 0: U-side rows from the Krylov columns of m_1: K_m^{-1}
        K = xp.stack([powers[i] @ b["VM"][:, 0] for i in range(R)], axis=1)
        rows = list(xp.linalg.inv(K))
    b["rows"], b["cols"], b["xp"] = rows, cols, xp
    return b


def _side_labels(rnn: LowRankRNN) -> tuple[list[str], list[str]]:
    """Labels of the U-side rows and V-side columns used by :func:`_blocks`, in its order."""
    n = _names(rnn)
    R = rnn.rank
    u, v = (n["U"][0], n["V"][0]) if R == 1 else ("U", "V")
    join = "" if R == 1 else " "
    rows = [x + join + u for x in n["Z"]] + ([x + join + u for x in n["M"]] if not rnn.is_linear else [])
    cols = [v + join + y for y in n["M"]]
    if rnn.n_in == 0:
        z1 = n["Z"][0]
        cols = [f"/{z1}{u}"] if R == 1 else [f"Kz^-1 e{j + 1}" for j in range(R)]
    if not rows:
        m1 = n["M"][0]
        rows = [f"1/{v}{m1}"] if R == 1 else [f"e{i + 1}' Km^-1" for i in range(R)]
    return rows, cols


def _power_label(rnn: LowRankRNN, k: int) -> str:
    if k == 0:
        return ""
    if rnn.rank == 1:
        vu = rnn.vector_names[rnn.slices["V"]][0] + rnn.vector_names[rnn.slices["U"]][0]
        return vu if k == 1 else f"{vu}^{k}"
    return "(VU)" if k == 1 else f"(VU)^{k}"


def _chain(*parts: str) -> str:
    return " ".join(p for p in parts if p)


@functools.lru_cache(maxsize=None)
def candidates(rnn: LowRankRNN) -> tuple[Candidate, ...]:
    """The ordered candidate invariants (label, f(blocks) -> scalar) of an architecture (module docstring)."""
    sl, R = rnn.slices, rnn.rank
    M, Z = range(sl["M"].start, sl["M"].stop), range(sl["Z"].start, sl["Z"].stop)
    out: list[Candidate] = []
    for a, z in enumerate(Z):
        for c, m in enumerate(M):
            out.append((pair_label(rnn, z, m), lambda b, a=a, c=c: b["ZM"][a, c]))
    if not rnn.is_linear:
        for a, m1 in enumerate(M):
            for c, m2 in enumerate(M):
                if c >= a:
                    out.append((pair_label(rnn, m1, m2), lambda b, a=a, c=c: b["MM"][a, c]))
    for k in range(1, R + 1):
        label = _power_label(rnn, 1) if R == 1 else ("tr VU" if k == 1 else f"tr (VU)^{k}")
        out.append((label, lambda b, k=k: b["xp"].trace(b["pow"][k])))
    rows, cols = _side_labels(rnn)
    for k in range(2 * R):
        for a, x in enumerate(rows):
            for c, y in enumerate(cols):
                label = _chain(x, _power_label(rnn, k), y)
                out.append((label, lambda b, a=a, c=c, k=k: b["rows"][a] @ b["pow"][k] @ b["cols"][c]))
    if not rnn.is_linear:
        uu = "uu" if R == 1 else "UU"
        for k in range(R):
            for j in range(k + 1):
                for i, y1 in enumerate(cols):
                    for c, y2 in enumerate(cols):
                        if j == k and c < i:
                            continue
                        if R == 1:
                            label = _chain(y1, _power_label(rnn, j), uu, _power_label(rnn, k), y2)
                        else:
                            left = f"({_chain(_power_label(rnn, j), y1)})'"
                            right = f"({_chain(_power_label(rnn, k), y2)})"
                            label = f"{left} {uu} {right}"
                        out.append(
                            (
                                label,
                                lambda b, i=i, c=c, j=j, k=k: (
                                    (b["pow"][j] @ b["cols"][i]) @ b["UU"] @ (b["pow"][k] @ b["cols"][c])
                                ),
                            )
                        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------- selection
def generic_overlaps(rnn: LowRankRNN) -> np.ndarray:
    """The fixed generic point: overlaps (P, P) of a random Gaussian network of N = 4 P neurons."""
    P = rnn.n_vectors
    N = GENERIC_N_FACTOR * P
    theta = np.random.default_rng(GENERIC_SEED).normal(size=(N, P))
    return theta.T @ theta / N


def _with_visible(rnn: LowRankRNN, S0, x):
    """S0 with its visible overlaps (label order) replaced by the vector x (symmetrically)."""
    rows, cols = (np.array(ix, dtype=int) for ix in zip(*visible_pairs(rnn), strict=True))
    return jnp.asarray(S0).at[rows, cols].set(x).at[cols, rows].set(x)


@float64
def visible_jacobian(rnn: LowRankRNN, f: Callable, S: Float[ArrayLike, "P P"]) -> np.ndarray:
    """Jacobian (..., n_visible) of f(S) (S one (P, P) matrix) with respect to the visible overlaps."""
    S = jnp.asarray(S, dtype=jnp.float64)
    x0 = jnp.stack([S[i, j] for i, j in visible_pairs(rnn)])
    return np.asarray(jax.jit(jax.jacfwd(lambda x: f(_with_visible(rnn, S, x))))(x0))


def _complex_step_jacobian(rnn: LowRankRNN, f: Callable, S0: np.ndarray, h: float = 1e-30) -> np.ndarray:
    """Jacobian (n_out, n_visible) of an analytic numpy f(S) w.r.t. the visible overlaps, exact to round-off:
    df/dx = Im f(x + i h) / h (no cancellation, so h can be tiny)."""
    columns = []
    for i, j in visible_pairs(rnn):
        S = S0.astype(np.complex128)
        S[i, j] += 1j * h
        if i != j:
            S[j, i] += 1j * h
        columns.append(np.imag(f(S)) / h)
    return np.stack(columns, axis=1)


def _greedy(rows: np.ndarray, basis: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
    """Indices of rows that raise the rank, in order (unit-normalised, Gram-Schmidt residual > RANK_TOL)."""
    n = rows.shape[1]
    basis = np.zeros((0, n)) if basis is None else basis
    norms = np.linalg.norm(rows, axis=1)
    scale = float(np.max(norms[np.isfinite(norms)], initial=0.0))
    chosen = []
    for index, row in enumerate(rows):
        norm = norms[index]
        if not np.isfinite(norm) or norm <= 1e-10 * scale:  # a constant candidate (round-off gradient)
            continue
        r = row / norm
        r = r - basis.T @ (basis @ r)
        r = r - basis.T @ (basis @ r)  # twice is enough
        if np.linalg.norm(r) > RANK_TOL:
            chosen.append(index)
            basis = np.vstack([basis, r / np.linalg.norm(r)])
    return chosen, basis


@functools.lru_cache(maxsize=None)
def _selection(rnn: LowRankRNN) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Chosen candidate indices (function coordinates) and visible pairs (gauge coordinates), once per rnn."""
    cands = candidates(rnn)
    S0 = generic_overlaps(rnn)
    jac = _complex_step_jacobian(rnn, lambda S: np.stack([f(_blocks(rnn, S, np)) for _, f in cands]), S0)
    n_visible, R2 = jac.shape[1], rnn.rank**2
    chosen, basis = _greedy(jac)
    if len(chosen) != n_visible - R2:
        raise RuntimeError(
            f"gauge: {len(chosen)} independent candidate invariants for {rnn.describe()}; expected "
            f"n_visible - R^2 = {n_visible} - {R2}"
        )
    pairs = visible_pairs(rnn)
    u = set(range(rnn.slices["U"].start, rnn.slices["U"].stop))
    diagonal = sorted(p for p in pairs if p[0] == p[1] and p[0] in u)
    order = diagonal + [p for p in pairs if p not in diagonal]
    unit = np.eye(n_visible)[[pairs.index(p) for p in order]]
    extra, _ = _greedy(unit, basis)
    if len(extra) != R2:
        raise RuntimeError(f"gauge: {len(extra)} gauge coordinates for {rnn.describe()}; expected R^2 = {R2}")
    return tuple(chosen), tuple(order[i] for i in extra)


# ---------------------------------------------------------------------------------------------- coordinates
def _batched(rnn: LowRankRNN, S, f: Callable) -> jax.Array:
    S = _check_S(rnn, S)
    P = rnn.n_vectors
    flat = S.reshape((-1, P, P))
    values = jax.vmap(f)(flat)
    return values.reshape(S.shape[:-2] + values.shape[1:])


@float64
def function_coordinates(
    rnn: LowRankRNN, S: Overlaps | Float[ArrayLike, "*batch P P"]
) -> tuple[Float[Array, "*batch F"], list[str]]:
    """Gauge-invariant coordinates of the visible overlaps that fix the network's function.

    Args:
        S: overlaps (..., P, P) (array or :class:`~overlapflow.Overlaps`).

    Returns:
        values (..., F) as a float64 JAX array, F = n_visible - R^2, and their labels (list of F str);
        rank 1, one input, one output: linear ``["zm", "vu", "zu vm"]``, nonlinear
        ``["zm", "mm", "vu", "zu vm", "mu vm", "vm uu vm"]``. Jittable and vmappable in S (``rnn`` static).
    """
    return _batched(rnn, S, _function_evaluator(rnn)), function_labels(rnn)


def function_labels(rnn: LowRankRNN) -> list[str]:
    """Labels of :func:`function_coordinates` (list of n_visible - R^2 str)."""
    chosen, _ = _selection(rnn)
    cands = candidates(rnn)
    return [cands[i][0] for i in chosen]


@functools.lru_cache(maxsize=None)
def _function_evaluator(rnn: LowRankRNN) -> Callable:
    """The selected candidates of one S (P, P) -> (F,), compiled once per architecture."""
    chosen, _ = _selection(rnn)
    cands = candidates(rnn)
    fns = [cands[i][1] for i in chosen]

    @jax.jit
    def one(S1):
        b = _blocks(rnn, S1)
        return jnp.stack([f(b) for f in fns])

    return one


@float64
def gauge_coordinates(
    rnn: LowRankRNN, S: Overlaps | Float[ArrayLike, "*batch P P"]
) -> tuple[Float[Array, "*batch R2"], list[str]]:
    """R^2 visible overlaps that, with the function coordinates, are local coordinates of the visible overlaps.

    Args:
        S: overlaps (..., P, P) (array or :class:`~overlapflow.Overlaps`).

    Returns:
        values (..., R^2) as a float64 JAX array and their overlap labels (e.g. ``["uu"]`` at rank 1
        nonlinear, ``["zu"]`` at rank 1 linear).
    """
    _, pairs = _selection(rnn)
    rows = np.array([i for i, _ in pairs], dtype=int)
    cols = np.array([j for _, j in pairs], dtype=int)
    return _check_S(rnn, S)[..., rows, cols], [pair_label(rnn, i, j) for i, j in pairs]


__all__ = [
    "MAX_CONDITION",
    "candidates",
    "function_coordinates",
    "function_labels",
    "gauge_coordinates",
    "gauge_matrix",
    "generic_overlaps",
    "transform",
    "visible_jacobian",
]
