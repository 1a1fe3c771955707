"""No secret reaches a log: every value known to be one is replaced wherever it appears.

The process learns its secrets where they pass: every stored secret is decrypted (and every new
one encrypted) by the token cipher, OAuth2 access tokens arrive from token endpoints, and the
settings hold the operator's (cron secret, admin and metrics keys, platform client secrets).
Each is registered here; the structlog processor `redact_secrets` then replaces each
occurrence, in any field of any event, nested or inside a rendered traceback, with
`[redacted]`. It is the last line: tracebacks are rendered without frame locals, and code does
not log credentials; this catches what slips through (an exception message that quotes a
request, a library's repr).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

from pydantic import SecretStr

REDACTED = "[redacted]"
# Shorter values are not treated as secrets: "true", a port, a status would be redacted
# everywhere. Every real token, key and secret is far longer.
MIN_SECRET_LENGTH = 8


class SecretRegistry:
    """The secret values this process knows (the newest `capacity` of them)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._values: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            changed = False
            for value in values:
                if value is None or len(value) < MIN_SECRET_LENGTH:
                    continue
                if value in self._values:
                    self._values.move_to_end(value)
                    continue
                self._values[value] = None
                changed = True
                if len(self._values) > self._capacity:
                    self._values.popitem(last=False)
            if changed:
                self._pattern = None

    def add_blob(self, plaintext: str) -> None:
        """A decrypted secret: the whole text, and the secret strings inside it when it is a
        JSON object (an OAuth2 client's secret, a platform's access and refresh tokens; not
        its client id or token endpoint, which logs may name)."""
        self.add(plaintext)
        try:
            value = json.loads(plaintext)
        except ValueError:
            return
        if isinstance(value, dict):
            self.add(*(_secret_strings(value)))

    def redact(self, text: str) -> str:
        pattern = self._compiled()
        return text if pattern is None else pattern.sub(REDACTED, text)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


SECRETS = SecretRegistry()

# What the keys of a credentials object whose values are secret end with (client_secret,
# access_token; not token_url).
_SECRET_KEYS = ("token", "secret", "password")


def _secret_strings(value: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            found.extend(_secret_strings(item))
        elif isinstance(item, str) and key.lower().endswith(_SECRET_KEYS):
            found.append(item)
    return found


def register_settings_secrets(settings: Any) -> None:
    """Every SecretStr of the settings (cron secret, admin key, token keys, client secrets)."""
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            SECRETS.add(secret, *secret.split(","))  # token keys come comma-separated


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The structlog processor: runs after the exception is rendered, before the renderer."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redacted(value)
    return event_dict


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return SECRETS.redact(value)
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return SECRETS.redact(str(value))  # what the renderer would show of it, redacted
