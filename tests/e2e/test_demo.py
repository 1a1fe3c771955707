"""`mls-sync demo` runs the whole sync end to end and prints the response JSON."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_json_shows_every_kind_of_outcome() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mls_sync.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)  # stdout holds only the JSON
    assert set(response) == {"success", "message", "data"}
    data = response["data"]
    transitions = {(c["oldStatus"], c["newStatus"]) for c in data["statusChanges"]}
    assert {
        ("active", "sold"),
        ("active", "pending"),
        ("pending", "active"),
        ("pending", "sold"),
        ("sold", "active"),
        ("active", "off_market"),
    } <= transitions
    assert data["unpublishedPosts"] >= 2
    assert data["restoredListings"] >= 1
    assert [e["error"] for e in data["errors"]] == ["Listing not found in MLS"]
    assert "No instagram connection found for unpublishing post" in done.stderr
