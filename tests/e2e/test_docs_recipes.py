"""Every vendor recipe of docs/connecting-an-mls.md ("Connecting each vendor"), run as written
against the sandbox in that vendor's mode: the `mls-sync feeds add` and `connections add`
commands are read from the page, pointed at the sandbox (its URL for the vendor's host, its
token endpoint where the vendor's is a real one, its credentials for the `$VARIABLES`), and
the feed they make must load. A recipe that drifts from the code fails here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mls_sync.cli import app
from mls_sync.mls.profiles import PROFILES
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.crypto import TokenCipher

PAGE = Path(__file__).parents[2] / "docs" / "connecting-an-mls.md"
TOKEN, CLIENT, SECRET, MEMBER, PASSWORD = "t0ken", "ID", "s3cret", "M12345", "pa55word"
SANDBOX_MODE = {"rapattoni": "generic"}  # the sandbox mode standing for each profile
USER = "agent@example.com"


def recipes() -> list[tuple[str, str]]:
    """(provider, command) for each add command under each vendor's heading."""
    text = PAGE.read_text()
    section = text[text.index("## Connecting each vendor") : text.index("### Re-authenticating")]
    found = []
    for part in re.split(r"^### ", section, flags=re.M)[1:]:
        provider = re.search(r"\(`(\w+)`\)", part.splitlines()[0])
        assert provider, part.splitlines()[0]
        for block in re.findall(r"```bash\n(.*?)```", part, flags=re.S):
            joined = block.replace("\\\n", " ")
            found += [
                (provider.group(1), line.strip())
                for line in joined.splitlines()
                if line.startswith(("mls-sync feeds add", "mls-sync connections add"))
            ]
    return found


RECIPES = recipes()


def test_every_vendor_profile_has_a_recipe() -> None:
    assert {provider for provider, _ in RECIPES} == set(PROFILES)


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, platforms_url: str, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    return CliRunner()


def run(cli: CliRunner, args: list[str]) -> Result:
    result = cli.invoke(app, args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result


def as_sandbox(args: list[str], reso: ResoSandbox, reso_url: str, provider: str) -> list[str]:
    """The recipe's arguments with the vendor's hosts and secrets replaced by the sandbox's."""
    _, refresh = reso.oauth.sign_in(MEMBER)
    secrets = {
        "$MLS_TOKEN": TOKEN,
        "$SERVER_TOKEN": TOKEN,
        "$ACCESS_TOKEN": TOKEN,
        "$SECRET": SECRET,
        "$CLIENT_SECRET": SECRET,
        "$SPARK_SECRET": SECRET,
        "$SPARK_CLIENT_ID": CLIENT,
        "$APP_ID": CLIENT,
        "$REFRESH_TOKEN": refresh,
        "$MLS_PASSWORD": PASSWORD,
    }
    out: list[str] = []
    for i, arg in enumerate(args):
        before = args[i - 1] if i else ""
        if before == "--base-url":
            bridge = re.search(r"/api/v\d/OData/\w+$", arg)  # the sandbox serves Bridge's paths
            arg = reso_url + (bridge.group(0) if bridge else "")
        elif before == "--token-url":
            arg = f"{reso_url}/token"
        elif before == "--profile" and arg.startswith("originating_system_name="):
            arg = "originating_system_name=sandbox"  # the sandbox's MLS
        out.append(secrets.get(arg, arg))
    if PROFILES[provider].token_url and "--token-url" not in out and "--auth-kind" in out:
        out += ["--token-url", f"{reso_url}/token"]  # the vendor's endpoint is a real host
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("provider", "command"), RECIPES, ids=[p for p, _ in RECIPES])
def test_the_recipe_connects_and_the_feed_loads(
    cli: CliRunner, reso: ResoSandbox, reso_url: str, provider: str, command: str
) -> None:
    reso.vendor = SANDBOX_MODE.get(provider, provider)
    reso.add_token(TOKEN)
    reso.oauth.add_client(CLIENT, SECRET)
    if "--client-secret" not in command:
        reso.oauth.add_client(CLIENT)  # a public client: the MLS issued no secret
    reso.oauth.add_member(MEMBER, PASSWORD)
    reso.add_listing("K1", "K1", "Active")  # ListingId = ListingKey: MLS Grid looks up by it
    args = as_sandbox(shlex.split(command)[1:], reso, reso_url, provider)
    run(cli, ["users", "add", USER])

    added = json.loads(run(cli, [*args, "--json"]).stdout)

    if args[0] == "feeds":
        synced = json.loads(run(cli, ["feeds", "sync", added["id"], "--json"]).stdout)
    else:
        synced = json.loads(run(cli, ["sync", "connection", added["id"], "--json"]).stdout)
    assert synced["success"] is True, synced
    assert reso.request_count >= 1
