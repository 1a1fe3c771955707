"""`dynamodb://PREFIX?region=...&endpoint_url=...`: which tables, where. Pure parsing, read by the
settings (to refuse a broken URL at start) and by the DynamoDB backend (to open it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SCHEME = "dynamodb"
# Table names allow [a-zA-Z0-9_.-]; the longest suffix we add is "-coordination".
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_KNOWN = {"region", "endpoint_url"}
EXAMPLE = "dynamodb://mls-sync?region=us-east-1 (endpoint_url=http://... for a local endpoint)"


class DynamoUrlError(ValueError):
    pass


@dataclass(frozen=True)
class DynamoUrl:
    prefix: str
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def data_table(self) -> str:
        return f"{self.prefix}-data"

    @property
    def coordination_table(self) -> str:
        return f"{self.prefix}-coordination"


def is_dynamodb_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SCHEME


def parse_dynamodb_url(url: str) -> DynamoUrl:
    """The URL's parts, or DynamoUrlError naming what is wrong (never a botocore error later)."""
    if not is_dynamodb_url(url) or "://" not in url:
        raise DynamoUrlError(f"not a DynamoDB URL; expected {EXAMPLE}")
    parts = urlsplit(url)
    prefix = parts.netloc
    if not _PREFIX.match(prefix):
        raise DynamoUrlError(
            f"DynamoDB table prefix {prefix!r} must be 1-200 of A-Z a-z 0-9 _ . -; "
            f"expected {EXAMPLE}"
        )
    if parts.path not in ("", "/"):
        raise DynamoUrlError(f"a DynamoDB URL has no path ({parts.path!r}); expected {EXAMPLE}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _KNOWN
    if unknown:
        raise DynamoUrlError(
            f"unknown DynamoDB URL option(s) {', '.join(sorted(unknown))}; "
            f"known: region, endpoint_url"
        )
    region = _single(query, "region")
    endpoint = _single(query, "endpoint_url")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise DynamoUrlError(f"endpoint_url must be an http(s) URL, got {endpoint!r}")
    return DynamoUrl(prefix=prefix, region=region, endpoint_url=endpoint)


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1 or not values[0]:
        raise DynamoUrlError(f"DynamoDB URL option {name} must be given once, with a value")
    return values[0]
