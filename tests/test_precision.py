"""Importing overlapflow changes no JAX setting; its entry points compute in float64 all the same.

The suite enables float64 for its own process (conftest.py), so what a user sees *without* it is
checked in fresh interpreters (``sys.executable -c ...``) that never enable it, or inside
``jax.enable_x64(False)`` (the user's default path: a float32 network next to the float64 theory).
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import overlapflow as of
from overlapflow import precision


def run_fresh(code: str) -> str:
    """Run ``code`` in a new interpreter without float64 enabled; return its stdout (fails on an error)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_importing_overlapflow_and_every_submodule_leaves_x64_off():
    out = run_fresh(
        """
        import importlib, pkgutil
        import jax, jax.numpy as jnp
        import overlapflow
        assert not jax.config.jax_enable_x64, "import overlapflow enabled x64"
        names = [m.name for m in pkgutil.walk_packages(overlapflow.__path__, "overlapflow.")]
        for name in names + ["overlapflow.plot"]:
            importlib.import_module(name)
            assert not jax.config.jax_enable_x64, f"import {name} enabled x64"
        assert jnp.ones(2).dtype == jnp.float32
        print(len(names))
        """
    )
    assert int(out) > 20  # every module was imported


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_linear_theory_entry_points_return_float64_without_x64():
    run_fresh(
        """
        import jax, jax.numpy as jnp, numpy as np
        import overlapflow as of
        from overlapflow import gauge, invariants
        from overlapflow.phenomena import twin_overlaps

        rnn, N = of.LowRankRNN(rank=1), 200
        key = jax.random.key(0)
        assert rnn.init(key, N=N).dtype == jnp.float32  # full networks: float32 by default
        theta = rnn.init(key, N=N, dtype=jnp.float64)
        assert theta.dtype == np.float64
        t = np.asarray(theta)

        # Overlaps.from_params / sample_params: float64 values, exact to float64 round-off
        S = of.Overlaps.from_params(rnn, theta)
        assert S.matrix.dtype == np.float64
        assert np.max(np.abs(np.asarray(S.matrix) - t.T @ t / N)) < 1e-13
        assert of.Overlaps.from_params(rnn, rnn.init(key, N=N)).matrix.dtype == np.float64
        assert of.Overlaps.from_dict(rnn, {"zm": 0.1}).matrix.dtype == np.float64
        theta2 = of.sample_params(rnn, S, 300, jax.random.key(1))
        assert theta2.dtype == np.float64
        t2 = np.asarray(theta2)
        assert np.max(np.abs(t2.T @ t2 / 300 - np.asarray(S.matrix))) < 1e-12  # float32: ~1e-7

        # gauge: float64 coordinates, invariant under the gauge action to round-off
        f, labels = gauge.function_coordinates(rnn, S)
        assert f.dtype == np.float64 and labels == ["zm", "vu", "zu vm"]
        s = np.asarray(S.matrix)  # vector order m, u, v, z
        assert np.allclose(np.asarray(f), [s[3, 0], s[2, 1], s[3, 1] * s[2, 0]], rtol=1e-14, atol=0)
        moved = gauge.transform(rnn, S, [[1.7]])
        assert moved.matrix.dtype == np.float64
        assert np.max(np.abs(np.asarray(gauge.function_coordinates(rnn, moved)[0]) - np.asarray(f))) < 1e-14
        values, _ = gauge.gauge_coordinates(rnn, S)
        assert values.dtype == np.float64

        # invariants: a K-preserving map theta -> theta X (X J X^T = J) leaves K unchanged to 1e-15
        c, sh = np.cosh(0.3), np.sinh(0.3)
        X = np.eye(4)
        X[np.ix_([1, 2], [1, 2])] = [[c, sh], [sh, c]]  # mixes u (J = -1) with v (J = +1)
        assert invariants.K_drift(rnn, t, t @ X, relative=True) < 1e-12  # float32: ~1e-7

        # twins and the full network in float64
        assert twin_overlaps(rnn, S, {"uu": 2.0}).matrix.dtype == np.float64
        x = np.zeros((1, 20, 1)); x[0, 0, 0] = 1.0
        assert of.network_forward(rnn, theta, x).dtype == np.float64
        assert of.network_forward(rnn, rnn.init(key, N=N), x).dtype == jnp.float32

        # nothing leaked out of the scopes, not even through an exception
        try:
            of.Overlaps.from_params(rnn, np.zeros((5, 3)))
        except ValueError:
            pass
        assert not jax.config.jax_enable_x64
        assert jnp.ones(2).dtype == jnp.float32 and jnp.asarray(t).dtype == jnp.float32
        """
    )


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_entry_point_traced_inside_a_float32_jit():
    """A decorated function inside the user's own jit (float32 process) computes in theta's dtype."""
    run_fresh(
        """
        import jax, jax.numpy as jnp, numpy as np
        import overlapflow as of

        rnn = of.LowRankRNN(rank=1, phi="erf")
        theta = rnn.init(jax.random.key(0), N=100)
        x = jax.random.normal(jax.random.key(1), (2, 30, 1))
        eager = of.network_forward(rnn, theta, x)
        jitted = jax.jit(lambda th, xs: of.network_forward(rnn, th, xs))(theta, x)
        grad = jax.grad(lambda th: jnp.sum(of.network_forward(rnn, th, x) ** 2))(theta)
        assert eager.dtype == jitted.dtype == grad.dtype == jnp.float32
        assert np.allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-5, atol=1e-6)
        assert not jax.config.jax_enable_x64
        """
    )


def test_the_decorator_keeps_metadata_and_restores_the_setting():
    assert of.sample_params.__name__ == "sample_params" and "Gram matrix" in of.sample_params.__doc__
    assert of.Overlaps.from_params.__wrapped__.__name__ == "from_params"
    seen = []

    @precision.float64
    def probe():
        seen.append(bool(jax.config.jax_enable_x64))
        raise RuntimeError("inside")

    with jax.enable_x64(False):
        with pytest.raises(RuntimeError, match="inside"):
            probe()
        assert not jax.config.jax_enable_x64
        with precision.float64_scope():
            assert jax.config.jax_enable_x64
        assert not jax.config.jax_enable_x64
    assert seen == [True]


def test_the_users_default_path_a_float32_network_next_to_the_float64_theory():
    """What a user who never enables float64 runs: ``rnn.init`` gives a float32 network, which the
    network engine trains in float32 (its overlaps, recorded in float64, are float32 numbers); the
    overlap engine runs the theory in its float64 scope from the same start. They agree to float32
    round-off, not to float64's."""
    with jax.enable_x64(False):
        rnn = of.LowRankRNN(rank=1)
        task = of.tasks.ExponentialFilter(c=0.2, t_max=5.0)
        theta = rnn.init(jax.random.key(0), N=100)
        assert theta.dtype == np.float32
        S0 = of.Overlaps.from_params(rnn, theta)
        net = of.train(of.NetworkEngine(), rnn, task, theta, 5e-3, 40)
        thy = of.train(of.OverlapEngine(), rnn, task, S0, 5e-3, 40)
        assert not jax.config.jax_enable_x64
    assert net.params.dtype == np.float32 and net.history.attrs["dtype"] == "float32"
    assert S0.matrix.dtype == thy.overlaps.dtype == np.float64
    for history in (net.history, thy.history):
        assert history.overlaps.dtype == history.loss.dtype == np.float64
    recorded = net.history.overlaps.values  # the network's overlaps, computed in float32, stored in float64
    np.testing.assert_array_equal(recorded, recorded.astype(np.float32))
    np.testing.assert_allclose(recorded[0], np.asarray(S0.matrix), rtol=0, atol=1e-6)  # the same start (2.4e-7)
    gap = of.max_overlap_deviation(net.history, thy.history)
    assert 1e-9 < gap < 5e-6, gap  # float32 round-off (measured 4.4e-7); float64 networks give about 1e-14
    loss_gap = np.max(np.abs(net.history.loss.values - thy.history.loss.values))
    assert loss_gap < 5e-6, loss_gap  # measured 5.4e-7 (loss about 2.06 -> 1.31)


def test_version_has_one_source():
    from overlapflow._version import __version__

    assert of.__version__ == __version__
    assert np.all([part.isdigit() for part in __version__.split(".")])


@pytest.mark.slow  # moved to the slow job: the default suite stays under 4 minutes on 2 cores
def test_training_without_x64_is_exact_in_float64_and_leaves_the_setting_off():
    """The theory-vs-network exactness of a linear network holds to float64 round-off in a process
    that never enabled float64, through every engine's entry point."""
    out = run_fresh(
        """
        import jax, jax.numpy as jnp, numpy as np
        import overlapflow as of
        from overlapflow.engines import NetworkEngine, OverlapEngine, ParticleEngine

        rnn = of.LowRankRNN(rank=1)
        task = of.tasks.ExponentialFilter(c=0.2, t_max=5.0)
        theta = rnn.init(jax.random.key(0), N=100, dtype=jnp.float64)
        S0 = of.Overlaps.from_params(rnn, theta).matrix
        net = of.train(NetworkEngine(), rnn, task, theta, 5e-3, 40)
        thy = of.train(OverlapEngine(), rnn, task, S0, 5e-3, 40)
        cloud = of.train(ParticleEngine(rule="gauss-hermite", nodes=2), rnn, task, S0, 5e-3, 40)
        assert net.history.overlaps.dtype == thy.history.overlaps.dtype == np.float64
        assert net.params.dtype == jnp.float64 and thy.overlaps.dtype == jnp.float64
        assert not jax.config.jax_enable_x64
        print(of.max_overlap_deviation(net.history, thy.history), of.max_overlap_deviation(cloud.history, thy.history))
        """
    )
    network_gap, particle_gap = map(float, out.split())
    assert network_gap < 1e-12 and particle_gap < 1e-12  # float32 would give about 1e-7
