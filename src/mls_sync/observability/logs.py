"""Structured logs (structlog): readable in a terminal, JSON lines elsewhere.

Logs go to stderr so that `--json` output on stdout stays machine-readable. Tracebacks are
rendered without frame locals (a frame's locals held bearer tokens and client secrets), and
every value known to be a secret is redacted from every event (observability/redact.py).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from mls_sync.observability.redact import redact_secrets


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", file: TextIO | None = None
) -> None:
    """`file`: where the lines go (stderr)."""
    out = file or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    # Exceptions become text or a dict here, before the redaction: never with locals.
    tracebacks: structlog.typing.Processor = (
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if fmt == "json"
        else structlog.processors.format_exc_info
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            tracebacks,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
