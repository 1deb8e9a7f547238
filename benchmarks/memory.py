"""Peak memory of a benchmark's child process."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """Peak RSS of this process, or of its largest waited-for child if larger, in MB.

    Not this process's `ru_maxrss`: Linux carries it over `exec`, so a child started by a
    benchmark reported the benchmark's own peak whenever that was larger (pipeline_speed showed
    the same figure on every row). VmHWM belongs to the process's own memory map."""
    with open("/proc/self/status") as status:
        own_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return max(own_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
