"""The version of overlapflow (one place: read by ``pyproject.toml`` and ``overlapflow.__version__``)."""

__version__ = "0.1.0"
