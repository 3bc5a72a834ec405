"""The peak resident memory (RSS) of this process over a block of work, sampled by a thread:
what a program's training needed, recorded in run.json (`memory_bytes`) and read by the plan
(podbench.experiments.plan) to estimate a cell's peak before it runs."""

from __future__ import annotations

import threading


def release_free_memory(collect: bool = True) -> None:
    """Hand memory this process has freed back to the system (glibc's `malloc_trim`, where the
    C library has it; milliseconds), so that its RSS counts what it holds rather than what
    earlier work once needed. `collect`: first free what only reference cycles hold (Python's
    garbage collector: a few tenths of a second in a process holding many objects)."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: libc's among them
    except (OSError, AttributeError):
        pass  # not glibc: its allocator keeps what it keeps


class PeakRss:
    """Samples this process's RSS every `every_s` seconds from `start` to `stop`; `peak` is
    the largest since the last `reset` (or `start`), `start_bytes` the RSS at `start`. As a
    context manager it starts on entry and stops on exit."""

    def __init__(self, every_s: float = 0.1) -> None:
        import psutil

        self._process = psutil.Process()
        self._every = every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start_bytes = 0
        self.peak = 0

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stopped.wait(self._every):
            self.peak = max(self.peak, self._rss())

    def start(self) -> PeakRss:
        self.start_bytes = self.peak = self._rss()
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = self._rss()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
