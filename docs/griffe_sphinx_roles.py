"""Griffe extension for the API reference: render Sphinx roles in docstrings as code.

The docstrings use reStructuredText roles such as ``:func:`~overlapflow.training.train``` and
``:class:`Overlaps```, which Markdown would print verbatim. This turns each into a code span:
``train`` (``~`` keeps the last component, as in Sphinx) or the name as written.
Loaded by mkdocstrings (``extensions`` in mkdocs.yml); it changes only the rendered text.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|obj|exc|const):`(~?)([^`]+)`")


def _replace(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_replace, obj.docstring.value)
