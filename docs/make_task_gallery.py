"""Draw docs/tasks.png: one sampled trial of every task in overlapflow.tasks."""

from pathlib import Path

import overlapflow as of

tasks = {
    "ExponentialFilter(c=0.2)": of.tasks.ExponentialFilter(c=0.2),
    "WhiteNoiseFilter": of.tasks.WhiteNoiseFilter(),
    "DampedOscillator(0.3, 2)": of.tasks.DampedOscillator(c=0.3, omega=2.0),
    "FlipFlop": of.tasks.FlipFlop(),
    "DecisionMaking": of.tasks.DecisionMaking(),
    "Teacher.paper()": of.tasks.Teacher.paper(),
}
of.plot.task_gallery(tasks, path=Path(__file__).with_name("tasks.png"))
