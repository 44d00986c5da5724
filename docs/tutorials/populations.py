"""Run the code of docs/tutorials/populations.md and record its numbers and figure.

    python docs/tutorials/populations.py

The docs build executes that page's ``python exec="on"`` blocks (markdown-exec, session
"populations"); this script executes the same blocks, in order, in one namespace, prints their
text output, and writes next to the other recorded results:

- ``docs/results/populations_context.json``: the command, the package version, the settings, the
  wall time and the load average, and the page's ``numbers`` (accuracies of network and theory with
  one and two populations, their per-population overlap deviations, the read-back accuracies and
  the finite-N check);
- ``docs/results/populations_context.png``: the page's figure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE / "populations.md"
RESULTS = HERE.parent / "results"
BLOCK = re.compile(r"^```python exec=\"on\"([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(options, code) of each executed block of the page's session, in order."""
    found = [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]
    return [(options, code) for options, code in found if 'session="populations"' in options]


def main() -> None:
    load_before = os.getloadavg()
    start = time.perf_counter()
    namespace: dict = {"__name__": "populations_page"}
    for options, code in blocks(PAGE.read_text()):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, str(PAGE), "exec"), namespace)
        if 'html="1"' not in options:  # the figure block prints an <img> tag
            print(output.getvalue(), end="", flush=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()

    import jax

    import overlapflow as of

    ns = namespace
    record = {
        "command": "python docs/tutorials/populations.py",
        "page": "docs/tutorials/populations.md",
        "overlapflow_version": of.__version__,
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "wall_time_s": round(wall, 1),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "settings": {
            "rnn": ns["rnn"].describe(),
            "task": repr(ns["task"]),
            "N": ns["N"],
            "lr": ns["lr"],
            "epochs": ns["epochs"],
            "optimizer": "sgd (network at rate lr * N; theory: mixture closure, method 'exact')",
            "dtype_network": "float32",
            "batch_key": "jax.random.key(1) (both engines)",
            "network_key": "jax.random.key(2), Mixture.sample(..., exact=True)",
            "test": "2000 fresh trials, jax.random.key(7)",
            "starts": {
                "two populations": {
                    "weights": ns["two"].weights.tolist(),
                    "means": ns["two"].means.tolist(),
                    "covariances": ns["two"].covariances.tolist(),
                },
                "one population": "Mixture.gaussian of the same overlaps S (K = 1, mean 0)",
            },
        },
        **ns["numbers"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "populations_context.json").write_text(json.dumps(record, indent=1) + "\n")
    ns["fig"].savefig(RESULTS / "populations_context.png", dpi=90)
    print(f"wrote {RESULTS / 'populations_context.json'} and populations_context.png ({wall:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
