"""Files only their owner may read: created 0600 in one step, never readable in between."""

from __future__ import annotations

import os
from pathlib import Path

OWNER_ONLY = 0o600


def create_owner_only(path: Path, content: bytes = b"") -> bool:
    """Create `path` readable and writable by its owner alone, whatever the umask; False (and
    nothing written) when it exists already: its owner chose its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), OWNER_ONLY)  # the umask may have taken bits away, never added
        file.write(content)
    return True
