"""The documentation: the README is a short front door, the reference pages are generated from
the code and complete, every link resolves, and the site builds with `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from pydantic import Field, SecretStr

from mls_sync.api.app import create_app
from mls_sync.cli import app as cli_app
from mls_sync.config import Settings
from mls_sync.mls.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def _load_reference() -> ModuleType:
    """docs/hooks/reference.py, the MkDocs hook that renders the reference pages."""
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


reference = _load_reference()


# --- the configuration reference -------------------------------------------------------------


def _env_name(name: str) -> str:
    """What a user sets for a field: its first alias, else the prefix and the name."""
    info = Settings.model_fields[name]
    alias = info.validation_alias or info.alias
    choices = [alias] if isinstance(alias, str) else list(getattr(alias, "choices", []))
    names = [c for c in choices if isinstance(c, str)]
    return (names[0] if names else Settings.model_config.get("env_prefix", "") + name).upper()


def test_every_setting_has_a_description() -> None:
    missing = [
        n for n, info in Settings.model_fields.items() if not (info.description or "").strip()
    ]
    assert not missing, f"Settings fields without description= in config.py: {missing}"


def test_settings_reference_lists_every_setting() -> None:
    page = reference.render_settings_reference()
    rows = {line.split("|")[1] for line in page.splitlines() if line.startswith("| <span")}
    for name in Settings.model_fields:
        env = _env_name(name)
        assert any(f"`{env}`" in row for row in rows), f"{env} ({name}) is not in the reference"
    description = Settings.model_fields["schedule_cron"].description or ""
    assert description.split(";")[0] in page


def test_settings_reference_shows_the_names_users_set() -> None:
    page = reference.render_settings_reference()
    assert "`DATABASE_URL` (also `MLS_SYNC_DATABASE_URL`)" in page  # an alias, not the prefix
    assert "`CRON_SECRET` (also `MLS_SYNC_CRON_SECRET`)" in page
    assert "`MLS_SYNC_SCHEDULE_CRON`" in page


def test_a_setting_without_a_description_fails_the_reference() -> None:
    class Undocumented(Settings):
        brand_new_setting: int = 3

    with pytest.raises(ValueError, match="brand_new_setting"):
        reference.render_settings_reference(Undocumented)


def test_a_secret_default_is_never_printed() -> None:
    class WithSecretDefault(Settings):
        demo_secret: SecretStr = Field(default=SecretStr("hunter2-xyz"), description="a secret")
        demo_password: str = Field(default="plain-xyz", description="named like a secret")

    page = reference.render_settings_reference(WithSecretDefault)
    assert "`MLS_SYNC_DEMO_SECRET`" in page and "`MLS_SYNC_DEMO_PASSWORD`" in page
    assert "hunter2-xyz" not in page and "plain-xyz" not in page
    assert "secret: not shown" in page


# --- the CLI reference ---------------------------------------------------------------------------


def _command_paths() -> list[str]:
    """Every command of the Typer app, walked through click's command tree."""
    root = typer.main.get_command(cli_app)
    paths: list[str] = []

    def walk(command: Any, ctx: Any) -> None:
        paths.append(ctx.command_path)
        for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                walk(sub, sub.context_class(sub, info_name=name, parent=ctx))

    walk(root, root.context_class(root, info_name="mls-sync"))
    return paths


def test_cli_reference_lists_every_command() -> None:
    page = reference.render_cli_reference()
    paths = _command_paths()
    assert {"mls-sync serve", "mls-sync sync connection", "mls-sync users add"} <= set(paths)
    for path in paths[1:]:
        assert f"{path} {{#{reference.slug(path)}}}" in page, f"{path} has no section"
        assert f"Usage: {path}" in page
    assert "`--base-url <str>`" in page  # options are listed with their help


# --- the HTTP API reference ----------------------------------------------------------------------


def test_api_reference_lists_every_path_of_the_openapi_document() -> None:
    document = create_app(Settings.model_construct()).openapi()
    page = reference.render_api_reference()
    assert document["paths"]
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                assert f"### {method.upper()} `{path}`" in page, f"{method} {path} is missing"
    for tag in {op["tags"][0] for item in document["paths"].values() for op in item.values()}:
        assert f"## {reference.md_text(tag)} {{#tag-{reference.slug(tag)}}}" in page


def test_every_vendor_profile_is_on_the_mls_page() -> None:
    table = reference.render_profiles_reference()
    for name in PROFILES:
        assert f"| `{name}` |" in table
    page = (DOCS / "connecting-an-mls.md").read_text()
    for name in PROFILES:
        assert f"`{name}`" in page


def test_every_generated_page_holds_its_marker() -> None:
    for page, (marker, _render) in reference.GENERATED.items():
        assert marker in (DOCS / page).read_text(), f"docs/{page} lost {marker}"


# --- the README and the links ----------------------------------------------------------------


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"
    head = "\n".join(lines[:15])
    assert head.index("make demo") < head.index("make test"), "the two commands come first"
    assert "make docs" in README.read_text()


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_links_are_relative_and_resolve() -> None:
    for file in _markdown_files():
        for target in LINK.findall(file.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            assert not target.startswith("/"), f"{file.name}: absolute link {target}"
            path = target.split("#", 1)[0]
            assert (file.parent / path).exists(), f"{file.name}: {target} does not exist"


def _anchors(page: Path) -> set[str]:
    """The ids a page's headings get (Python-Markdown's toc slugs, or an explicit {#id})."""
    from markdown.extensions.toc import slugify

    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        explicit = re.search(r"\{#([^}]+)\}\s*$", heading)
        found.add(explicit[1] if explicit else slugify(heading.replace("`", ""), "-"))
    return found


def test_readme_anchors_exist() -> None:
    for target in LINK.findall(README.read_text()):
        path, _, anchor = target.partition("#")
        if anchor and path.endswith(".md") and not path.startswith("http"):
            assert anchor in _anchors(README.parent / path), f"README.md: no #{anchor} in {path}"


def test_no_absolute_paths_of_a_machine() -> None:
    for file in [*_markdown_files(), ROOT / "mkdocs.yml"]:
        text = file.read_text()
        for prefix in ("/work/", "/home/", "/root/", "/tmp/", "/Users/"):
            assert prefix not in text, f"{file.name} mentions {prefix}"


# --- the site ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed (the dev extra has mkdocs-material)")
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("configuration", "cli", "http-api", "connecting-an-mls"):
        html = (site / page / "index.html").read_text()
        assert "<!-- generated:" not in html, f"{page}: the marker was not replaced"
    assert "MLS_SYNC_SCHEDULE_CRON" in (site / "configuration" / "index.html").read_text()
