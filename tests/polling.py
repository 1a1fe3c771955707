"""The one way a test waits for something another task, thread or process does: `eventually`.

Only for what the test cannot drive itself (a subprocess, a server's thread, a background
task); time that code under test reads is moved on a `factories.Clock`, never slept through.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    within: float,
    what: str,
    step: float = 0.05,
) -> None:
    """Return once `check()` (plain or async) is true, asking every `step` seconds; fail when
    it is still false after `within` seconds, saying what was waited for. `check` may fail
    sooner itself (a process that died, say)."""
    deadline = time.monotonic() + within
    while True:
        answer = check()
        if await answer if inspect.isawaitable(answer) else answer:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(step)
