"""Memory of the worker process, per experiment.

A warm worker runs many experiments in one process, so the process-lifetime peak (ru_maxrss)
would report the largest experiment so far for every later one. On Linux the peak resident set
(VmHWM) can be reset by writing "5" to /proc/self/clear_refs; each experiment resets it at its
start and reads it at its end. Where that is unavailable the lifetime peak is reported.
On CUDA the device's peak is what matters and is reset per experiment through torch.
"""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def current_rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024
