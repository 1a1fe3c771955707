"""Peak resident memory of this process, per benchmark case.

`getrusage` reports a high-water mark for the whole life of the process, so a later, lighter
case would inherit an earlier case's peak. On Linux, writing 5 to /proc/self/clear_refs resets
that mark to the current RSS (kernel >= 4.0), so each case is measured on its own: the figure is
the process's peak during the case (the sandbox servers included, as they run in this process).
Where the reset is not allowed, the figure stays process-wide and says so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Start a new high-water mark; False when the platform does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_bytes() -> int:
    """The high-water mark of resident memory since the last reset (or process start)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB
