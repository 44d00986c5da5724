"""Worker processes for independent runs: one single-threaded, float64 JAX process per core.

The one process pool of overlapflow on one machine: sweeps, the A/B -> C runner and validate-theory
run their jobs in it (a sweep goes to Dask only when given a scheduler, e.g. a SLURM cluster).

Each worker is started with ``spawn`` (a fresh interpreter: JAX does not survive ``fork``), runs
with float64 enabled for the whole process (:func:`~overlapflow.precision.enable_globally`), and
with XLA flags for one compute thread. By default each JAX process also runs Eigen threads; with
one process per core they fought over the cores (4 busy threads on 2 cores). Workers ignore
SIGINT: Ctrl-C at a terminal (which signals the whole process group) stops the parent, which then
terminates its workers without waiting for their jobs (every job checkpoints atomically, so a
killed one continues from its checkpoint on the next call).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal

from .precision import enable_globally

#: XLA flags of the worker processes: one compute thread each.
SINGLE_THREAD_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def _init_worker() -> None:
    """Start of each worker process (ours: nothing else runs there): float64 for the whole process,
    SIGINT ignored (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    enable_globally()


@contextlib.contextmanager
def _single_threaded_children():
    """Worker processes started inside inherit XLA flags for one compute thread each."""
    before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = " ".join(filter(None, [before, *SINGLE_THREAD_FLAGS]))
    try:
        yield
    finally:
        if before is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = before


@contextlib.contextmanager
def worker_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` single-threaded float64 JAX processes (module docstring)."""
    context = multiprocessing.get_context("spawn")
    with _single_threaded_children():
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
        try:
            yield pool
        except BaseException:  # Ctrl-C or an error in the parent: stop the workers now (module docstring)
            for process in list(pool._processes.values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
