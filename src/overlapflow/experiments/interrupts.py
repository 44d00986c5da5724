"""Ctrl-C that cannot be lost.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread happens to be.
When that is inside a weakref callback or a ``__del__`` (JAX runs many), Python prints "Exception
ignored" and carries on: the run finished as if Ctrl-C had never been pressed. Inside
``interrupts_recorded()`` the handler also records the request, and the runner calls
``raise_if_interrupted()`` after writing each checkpoint segment, so a swallowed Ctrl-C stops the run
at the next segment, with its checkpoint kept; the block's unraisable hook keeps such a swallowed
``KeyboardInterrupt`` off stderr (the run's one line says what happened).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

_requested = False


def _record_and_raise(signum, frame):
    global _requested
    _requested = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_recorded():
    """For the block, Ctrl-C raises ``KeyboardInterrupt`` as usual and is also recorded (main thread
    only; elsewhere, or where SIGINT is ignored, as in a process started with ``nohup``, the block
    runs unchanged)."""
    global _requested
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    _requested = False
    previous = signal.signal(signal.SIGINT, _record_and_raise)
    previous_hook = sys.unraisablehook

    def quiet_swallowed_interrupt(unraisable):
        """Drop the "Exception ignored" report of a recorded Ctrl-C; report anything else as before."""
        if not (_requested and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_swallowed_interrupt
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        _requested = False


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed in ``interrupts_recorded()`` (even if the
    first one was swallowed)."""
    if _requested:
        raise KeyboardInterrupt
