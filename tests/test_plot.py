"""Figures render and hold what they claim."""

import jax
import numpy as np

import overlapflow as of


def test_task_gallery_draws_one_trial_per_task(tmp_path):
    tasks = {"filter": of.tasks.ExponentialFilter(c=0.2), "flip-flop": of.tasks.FlipFlop(batch_size=2)}
    fig = of.plot.task_gallery(tasks, path=tmp_path / "tasks.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["filter", "flip-flop"]
    target = of.tasks.ExponentialFilter(c=0.2).sample(jax.random.key(0), 0.05).targets[0, :, 0]
    np.testing.assert_allclose(visible[0].lines[1].get_ydata(), np.asarray(target))
    assert (tmp_path / "tasks.png").stat().st_size > 10_000
