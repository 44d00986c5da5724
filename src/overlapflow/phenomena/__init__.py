"""Phenomena of learning in overlap space (theory section 7).

- :mod:`~overlapflow.phenomena.twin`: degeneracy. Twin networks share every loss-visible overlap
  but not the invisible ones: identical activity and output, different learning.

Other phenomena (curricula, memory of training history) live in their own modules of this
package and are imported from there.
"""

from .twin import (
    feasible_range,
    learning_separation,
    noise_output_variance,
    noise_response,
    twin_network,
    twin_overlaps,
)

__all__ = [
    "feasible_range",
    "learning_separation",
    "noise_output_variance",
    "noise_response",
    "twin_network",
    "twin_overlaps",
]
