"""Memory, as the process and the machine see it: the package's one probe.

* :func:`available_memory` -- what a new allocation can get (checks before big work);
* :func:`release_memory` -- give freed heap back to the OS (between tiles; before a measurement);
* :class:`PeakMemory` -- the peak memory growth of a block of code (benchmarks, budget tests),
  with :func:`memory_probe` saying how it is measured on this system.
"""
from __future__ import annotations

import os

__all__ = ["available_memory", "release_memory", "memory_probe", "PeakMemory", "status_kib", "reset_peak"]

_LIBC = None


def release_memory() -> bool:
    """Give memory freed since the last call back to the OS (glibc ``malloc_trim``).

    Otherwise a tile's freed temporaries stay in the allocator's arenas, fragmented, and the
    next tile's peak adds to them. Returns False where there is no glibc (macOS, Windows, musl).
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL(None)
            _LIBC.malloc_trim  # noqa: B018 - the attribute is the test
        except (OSError, AttributeError, TypeError):
            _LIBC = False
    if _LIBC is False:
        return False
    _LIBC.malloc_trim(0)
    return True


def status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``...), or None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_PROBE: str | None = None


def memory_probe() -> str:
    """How :class:`PeakMemory` measures in this process.

    ``"rss+trim"``: peak resident-set growth of the block, after glibc's free heap memory is
    returned to the system just before it; ``"rss"``: the same without the trim (not glibc);
    ``"tracemalloc"``: Python-tracked allocations only (no ``/proc`` reset).

    Why the trim: glibc keeps freed memory for reuse (after large blocks are freed it even
    raises its mmap threshold, so later arrays of up to 32 MiB come from the heap). A block
    that reuses memory freed by earlier work would show little or no resident-set growth.
    Trimming first makes it touch fresh pages, as a freshly started process does, so the
    growth is the block's real working memory.
    """
    global _PROBE
    if _PROBE is None:
        if reset_peak() and status_kib("VmHWM") is not None:
            _PROBE = "rss+trim" if release_memory() else "rss"
        else:
            _PROBE = "tracemalloc"
    return _PROBE


class PeakMemory:
    """Context manager: ``peak_mb`` is the peak memory growth (MiB) of the enclosed code."""

    def __enter__(self):
        probe = memory_probe()
        self.mode = "rss" if probe.startswith("rss") else "tracemalloc"
        if probe == "rss+trim":
            release_memory()
        if self.mode == "rss":
            reset_peak()
            self.base = status_kib("VmRSS") or 0
        else:
            import tracemalloc

            tracemalloc.start()
            tracemalloc.reset_peak()
            self.base = tracemalloc.get_traced_memory()[0]
        self.peak_mb = float("nan")
        return self

    def __exit__(self, *exc):
        if self.mode == "rss":
            hwm = status_kib("VmHWM")
            if hwm is not None:
                self.peak_mb = max(0, hwm - self.base) / 1024.0
        else:
            import tracemalloc

            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            self.peak_mb = max(0, peak - self.base) / 2 ** 20
        return False


def available_memory() -> int | None:
    """Bytes of memory the kernel can give without swapping (``MemAvailable``), or None if unknown.

    A cgroup limit (containers, CI runners) lower than that is honoured too.
    """
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    for path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                            ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                             "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(path, encoding="ascii") as f:
                limit = f.read().strip()
            with open(used_path, encoding="ascii") as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            avail = min(avail, max(0, int(limit) - used))
        break
    return avail
