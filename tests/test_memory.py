"""Decoding training history from overlaps (the A/B -> C protocol)."""

import jax
import numpy as np
import pytest
import xarray as xr

import overlapflow as of
from overlapflow.phenomena.memory import decode_history, decoding_table, random_initial_overlaps, run_ab_to_c


def synthetic_result(n_pairs=10, seed=0):
    """Visible overlaps identical within a pair, invisible ones (zz) shifted by the history."""
    rnn = of.LowRankRNN(rank=1, phi="erf")
    rng = np.random.default_rng(seed)
    S = np.zeros((3, n_pairs, 2, 4, 4))
    for p in range(n_pairs):
        base = random_initial_overlaps(rnn, jax.random.key(p))
        for m in range(2):
            S[:, p, m] = base
            S[2, p, m, 3, 3] += 3.0 * m + 0.01 * rng.normal()
    return xr.Dataset(
        {"overlaps": (("stage", "pair", "member", "row", "col"), S), "visible": (("row", "col"), of.visible_mask(rnn))},
        coords={"stage": ["start", "after_AB", "after_C"], "row": list(rnn.vector_names), "col": list(rnn.vector_names)},
    )


def test_decoder_reads_what_the_features_hold():
    result = synthetic_result()
    assert decode_history(result, "after_C", "invisible")[0] == pytest.approx(1.0)
    assert decode_history(result, "after_C", "visible")[0] == 0.5  # identical features: a coin flip
    assert decode_history(result, "start", "invisible")[0] == 0.5
    noisy = decode_history(result, "after_C", "invisible", feature_noise=10.0)[0]
    assert noisy < 1.0
    with pytest.raises(ValueError, match="stage = 'end'"):
        decode_history(result, "end", "visible")


def test_random_initial_overlaps_follow_the_paper():
    rnn = of.LowRankRNN(rank=1, phi="erf")
    S = random_initial_overlaps(rnn, jax.random.key(3))
    assert np.all((np.diag(S) >= 0.5) & (np.diag(S) <= 2.0))
    assert np.all(S[~np.eye(4, dtype=bool)] >= 0) and np.linalg.eigvalsh(S)[0] > 0


def test_ab_to_c_protocol_short_run():
    """6 pairs, 150 epochs per phase: nothing decodable at the start (members identical), the
    history decodable from visible overlaps after A/B (measured 1.0 at 1000 epochs)."""
    result = run_ab_to_c(n_pairs=6, epochs=150, batch_size=8)
    assert result.overlaps.sizes == {"stage": 3, "pair": 6, "member": 2, "row": 4, "col": 4}
    np.testing.assert_array_equal(result.overlaps.values[0, :, 0], result.overlaps.values[0, :, 1])
    table = decoding_table(result, noise_levels=(0.0,), n_train_pairs=4, resamples=20)
    assert table.sel(stage="start").values.max() == 0.5
    assert table.sel(stage="after_AB", features="visible").item() >= 0.9
    assert np.all(np.isfinite(result.loss.values))
