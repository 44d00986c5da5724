"""Every docstring example (``>>>``) of overlapflow runs and shows what it prints.

The modules are found by walking the package (``pkgutil``), so a new module's examples are run
without listing it here. A module whose optional extra (:mod:`overlapflow._extras`) is not
installed is skipped, not failed; the ``test`` extra installs them all. Each module with examples is
one case; the whole package must hold at least :data:`MIN_EXAMPLES`, so the suite cannot pass
by finding none.
"""

import doctest
import importlib
import pkgutil
import warnings

import pytest

import overlapflow
from overlapflow._extras import EXTRAS, MissingExtra, missing

#: At least this many examples in the package (54 when this was written, 51 outside run_folder); lower it only
#: when examples are removed on purpose.
MIN_EXAMPLES = 50

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: import name of an optional package -> its extra
_EXTRA_OF = {module: extra for extra, packages in EXTRAS.items() for _, module in packages}


def _modules() -> dict[str, str]:
    """Every module of the package: name -> source file (walked, not listed)."""
    found = {"overlapflow": overlapflow.__file__}
    for info in pkgutil.walk_packages(overlapflow.__path__, "overlapflow."):
        spec = info.module_finder.find_spec(info.name, None)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            found[info.name] = spec.origin
    return found


MODULES = _modules()


def _prompts(path: str) -> int:
    """The ``>>>`` prompts in a source file (read, not imported)."""
    with open(path, encoding="utf-8") as f:
        return sum(line.lstrip().startswith(">>>") for line in f)


WITH_EXAMPLES = {name: n for name, path in MODULES.items() if (n := _prompts(path))}


def _import(name: str):
    """The module, or a skip when an optional extra it needs is missing."""
    try:
        return importlib.import_module(name)
    except MissingExtra as error:
        pytest.skip(f"{name}: {error}")
    except ImportError as error:
        extra = _EXTRA_OF.get((error.name or "").partition(".")[0])
        if extra is not None and missing(extra):
            pytest.skip(f"{name} needs the {extra!r} extra (pip install 'overlapflow[{extra}]')")
        raise


def test_the_package_has_examples():
    assert len(MODULES) > 50, f"walking overlapflow found only {len(MODULES)} modules"
    total = sum(WITH_EXAMPLES.values())
    assert total >= MIN_EXAMPLES, (
        f"{total} docstring examples in overlapflow, fewer than {MIN_EXAMPLES}: {WITH_EXAMPLES}"
    )
    for name in ("overlapflow", "overlapflow.overlaps", "overlapflow.mixture", "overlapflow.training"):
        assert name in WITH_EXAMPLES, f"{name} lost its docstring example"


@pytest.mark.parametrize("name", sorted(WITH_EXAMPLES))
def test_docstring_examples(name):
    module = _import(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    found = sum(len(t.examples) for t in tests)
    # an example the finder cannot see (a docstring of an object imported from elsewhere, a string
    # that is not a docstring) would never run
    assert found == WITH_EXAMPLES[name], (
        f"{name}: {WITH_EXAMPLES[name]} '>>>' prompts in the source but doctest finds {found} examples"
    )
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    with warnings.catch_warnings():
        # an example must show the current API, not a deprecated alias
        warnings.filterwarnings("error", message=r"overlapflow\..* is deprecated", category=DeprecationWarning)
        for test in tests:
            runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.attempted == found
    assert result.failed == 0, "".join(report)
