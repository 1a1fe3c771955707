"""Reference pages generated from the code at build time, so they can never go stale.

`mkdocs.yml` loads this file as a hook. A page holds a marker comment, and `on_page_markdown`
replaces it with markdown rendered from the code that is the truth:

- `<!-- generated: settings -->`: every field of `mls_sync.config.Settings`;
- `<!-- generated: cli -->`: every command of the Typer app `mls_sync.cli:app`;
- `<!-- generated: openapi -->`: every operation of the FastAPI app's OpenAPI document;
- `<!-- generated: mls-profiles -->`: every vendor profile of `mls_sync.mls.profiles`;
- `<!-- generated: webhook-events -->`: the JSON Schema of every event of `mls_sync.domain.events`.

A marker missing from its page, or a setting without a description, fails the build.
`tests/unit/test_docs.py` imports the `render_*` functions to check the pages are complete.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import PurePath
from typing import Any

# --- markdown helpers ----------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def md_text(text: str, *, table: bool = False) -> str:
    """Plain text as markdown: code spans (`...`) kept, markup characters outside them
    escaped, so `<str>` or `*/15` reach the page as written. In a table cell, newlines
    become spaces and pipes outside code spans are escaped (inside them, the table
    extension already leaves pipes alone)."""
    if table:
        text = " ".join(text.split())
    parts: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(_escape(text[last : match.start()], table=table))
        parts.append(match.group(0))
        last = match.end()
    parts.append(_escape(text[last:], table=table))
    return "".join(parts)


def _escape(text: str, *, table: bool) -> str:
    text = text.replace("\\", "\\\\").replace("&", "&amp;")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([*_\[\]`])", r"\\\1", text)
    return text.replace("|", "\\|") if table else text


def code(text: str) -> str:
    """`text` as a code span (a backtick inside is allowed for)."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- configuration reference ---------------------------------------------------------------

# Sections of the reference, by field name; a field no section claims lands in "Other", so a
# new setting is never left out.
SETTING_GROUPS: list[tuple[str, Callable[[str], bool]]] = [
    (
        "Core",
        lambda n: (
            n in {"environment", "data_dir", "database_url", "token_keys", "cron_secret"}
            or n.startswith("log_")
        ),
    ),
    (
        "The service: API, scheduler, dashboard",
        lambda n: n.startswith(("api_", "schedule", "shutdown_", "dashboard_")),
    ),
    ("MLS requests", lambda n: n.startswith("mls_")),
    (
        "Social platforms",
        lambda n: n.startswith(
            (
                "facebook_",
                "instagram_",
                "linkedin_",
                "x_",
                "google_",
                "pinterest_",
                "tiktok_",
                "platform_",
                "unpublish_",
            )
        ),
    ),
    (
        "Leases and workers",
        lambda n: n.startswith(("lease_", "worker_")) or n in {"executor", "shared_rate_limits"},
    ),
    ("Alerts", lambda n: n.startswith("alert_")),
    ("CloudWatch metrics (EMF)", lambda n: n.startswith("emf_")),
]


@dataclasses.dataclass(frozen=True)
class SettingDoc:
    field: str
    env_names: tuple[str, ...]  # what a user sets; the first is the one to use
    type: str
    default: str
    description: str
    secret: bool


def settings_docs(model: type[Any] | None = None) -> list[SettingDoc]:
    """One entry per field of `model` (`mls_sync.config.Settings` by default), in declaration
    order. Raises when one has no description, so the build fails instead of publishing a
    bare name."""
    if model is None:
        from mls_sync.config import Settings

        model = Settings

    config = model.model_config
    prefix = str(config.get("env_prefix") or "")
    upper = not config.get("case_sensitive", False)
    docs: list[SettingDoc] = []
    missing: list[str] = []
    for name, info in model.model_fields.items():
        description = " ".join((info.description or "").split())
        if not description:
            missing.append(name)
        secret = _is_secret(info.annotation) or any(word in name for word in ("secret", "password"))
        docs.append(
            SettingDoc(
                field=name,
                env_names=_env_names(name, info, prefix, upper=upper),
                type=_type_name(info.annotation) + _constraints(info.metadata),
                default=_default(info, secret=secret),
                description=description,
                secret=secret,
            )
        )
    if missing:
        raise ValueError(
            "Settings fields without a description (add description= in config.py): "
            + ", ".join(missing)
        )
    return docs


def _env_names(name: str, info: Any, prefix: str, *, upper: bool) -> tuple[str, ...]:
    """pydantic-settings reads a field's aliases as they are (no prefix); otherwise the
    prefix plus the field name."""
    names: list[str] = []
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        names.append(alias)
    elif alias is not None:  # AliasChoices: plain strings (AliasPath entries name no variable)
        names.extend(choice for choice in getattr(alias, "choices", ()) if isinstance(choice, str))
    if not names:
        names.append(prefix + name)
    return tuple(n.upper() if upper else n for n in names)


def _is_secret(annotation: Any) -> bool:
    from pydantic import SecretBytes, SecretStr

    return any(arg in (SecretStr, SecretBytes) for arg in _flatten(annotation))


def _flatten(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _flatten(arg)


def _type_name(annotation: Any) -> str:
    from pydantic import SecretBytes, SecretStr

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if origin is dict:
        return "JSON object"
    if origin in (list, tuple, set, frozenset):
        return "JSON list"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    if annotation in (SecretStr, SecretBytes):
        return "secret string"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    names = {str: "string", int: "integer", float: "number", bool: "true or false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(metadata: list[Any]) -> str:
    marks = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    found: list[str] = []
    for item in metadata:
        for attr, sign in marks.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            choices = re.fullmatch(r"\^\(([\w|]+)\)\$", pattern)
            found.append(
                "one of " + ", ".join(choices[1].split("|")) if choices else f"pattern `{pattern}`"
            )
    return f" ({'; '.join(found)})" if found else ""


def _default(info: Any, *, secret: bool) -> str:
    from pydantic_core import PydanticUndefined

    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if secret:
        return "(secret: not shown)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def render_settings_reference(model: type[Any] | None = None) -> str:
    docs = settings_docs(model)
    groups: dict[str, list[SettingDoc]] = {title: [] for title, _ in SETTING_GROUPS}
    groups["Other"] = []
    for doc in docs:
        title = next((t for t, claims in SETTING_GROUPS if claims(doc.field)), "Other")
        groups[title].append(doc)
    lines: list[str] = []
    for title, members in groups.items():
        if not members:
            continue
        lines += [f"## {title}", "", "| variable | type | default | description |"]
        lines.append("| --- | --- | --- | --- |")
        for doc in members:
            primary, *others = doc.env_names
            cell = f'<span id="{slug(primary)}"></span>{code(primary)}'
            if others:
                cell += " (also " + ", ".join(code(o) for o in others) + ")"
            default = md_text(doc.default, table=True) if doc.secret else code(doc.default)
            if doc.default in ("unset", "required"):
                default = doc.default
            lines.append(
                f"| {cell} | {md_text(doc.type, table=True)} | {default} "
                f"| {md_text(doc.description, table=True)} |"
            )
        lines.append("")
    return "\n".join(lines)


# --- CLI reference -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CommandDoc:
    path: str  # "mls-sync sync connection"
    depth: int  # 0 for the root, 1 for `mls-sync sync`, ...
    help: str
    short_help: str
    usage: str
    params: list[tuple[str, str]]  # (the option's or argument's declaration, its help)
    subcommands: list[str]


def cli_docs() -> list[CommandDoc]:
    """Every command of `mls_sync.cli:app`, walked through the click command tree that
    `typer.main.get_command` builds (click's public Command/Group/Parameter interface)."""
    import typer

    from mls_sync.cli import app

    root = typer.main.get_command(app)
    found: list[CommandDoc] = []

    def walk(command: Any, ctx: Any, depth: int) -> None:
        subcommands: list[tuple[str, Any]] = []
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not getattr(sub, "hidden", False):
                    subcommands.append((name, sub))
        params = []
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            record = param.get_help_record(ctx)
            if record is None:  # a plain click argument has no help record
                record = (" ".join(param.get_usage_pieces(ctx)) or param.name, "")
            params.append((record[0], record[1] or ""))
        path = ctx.command_path
        found.append(
            CommandDoc(
                path=path,
                depth=depth,
                help=_clean_help(command.help or ""),
                short_help=command.get_short_help_str(limit=120),
                usage=f"{path} {' '.join(command.collect_usage_pieces(ctx))}".strip(),
                params=params,
                subcommands=[f"{path} {name}" for name, _ in subcommands],
            )
        )
        for name, sub in subcommands:
            walk(sub, sub.context_class(sub, info_name=name, parent=ctx), depth + 1)

    walk(root, root.context_class(root, info_name="mls-sync"), 0)
    return found


def _clean_help(text: str) -> str:
    lines = [line for line in inspect.cleandoc(text).splitlines() if line.strip() != "\b"]
    return "\n".join(lines).strip()


def render_cli_reference() -> str:
    docs = cli_docs()
    root, commands = docs[0], docs[1:]
    lines = [md_text(root.help), "", "```text", f"Usage: {root.usage}", "```", ""]
    lines += _param_table(root.params)
    lines += ["| command | what it does |", "| --- | --- |"]
    lines += [
        f"| [{code(c.path)}](#{slug(c.path)}) | {md_text(c.short_help, table=True)} |"
        for c in commands
    ]
    lines.append("")
    for command in commands:
        level = "#" * min(command.depth + 1, 4)
        lines += [f"{level} {command.path} {{#{slug(command.path)}}}", ""]
        lines += [md_text(command.help), ""] if command.help else []
        lines += ["```text", f"Usage: {command.usage}", "```", ""]
        lines += _param_table(command.params)
        if command.subcommands:
            lines.append(
                "Commands: " + ", ".join(f"[{code(s)}](#{slug(s)})" for s in command.subcommands)
            )
            lines.append("")
    return "\n".join(lines)


def _param_table(params: list[tuple[str, str]]) -> list[str]:
    if not params:
        return []
    rows = [f"| {code(decl)} | {md_text(text, table=True)} |" for decl, text in params]
    return ["| argument or option | meaning |", "| --- | --- |", *rows, ""]


# --- HTTP API reference ----------------------------------------------------------------------

_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app `mls-sync serve` runs, built with the default settings
    (not the environment's), without opening a database: nothing runs until the lifespan."""
    from mls_sync.api.app import create_app
    from mls_sync.config import Settings

    return create_app(Settings.model_construct()).openapi()


def render_api_reference(document: dict[str, Any] | None = None) -> str:
    doc = document if document is not None else openapi_document()
    schemes = doc.get("components", {}).get("securitySchemes", {})
    schemas = doc.get("components", {}).get("schemas", {})
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}

    lines = [f"OpenAPI {doc.get('openapi', '')}, {doc['info']['title']} {doc['info']['version']}."]
    lines += ["", "### Security schemes", ""]
    for name, scheme in schemes.items():
        kind = f"HTTP {scheme.get('scheme', '')}" if scheme.get("type") == "http" else ""
        lines.append(
            f"- **{name}** ({kind or scheme.get('type', '')}): {scheme.get('description', '')}"
        )
    lines.append("")
    lines += ["| tag | operations |", "| --- | --- |"]
    for tag, ops in by_tag.items():
        lines.append(f"| [{tag}](#tag-{slug(tag)}) | {len(ops)} |")
    lines.append("")
    for tag, ops in by_tag.items():
        lines += [f"## {md_text(tag)} {{#tag-{slug(tag)}}}", ""]
        if tag_text.get(tag):
            lines += [tag_text[tag], ""]
        for method, path, operation in ops:
            lines += _operation(method, path, operation, schemes)
    if schemas:
        lines += ["## Schemas {#schemas}", ""]
        for name, schema in schemas.items():
            lines += _schema_section(name, schema)
    return "\n".join(lines)


def _operation(method: str, path: str, op: dict[str, Any], schemes: dict[str, Any]) -> list[str]:
    lines = [f"### {method} `{path}` {{#{slug(method + ' ' + path)}}}", ""]
    if op.get("summary"):
        lines += [f"**{md_text(op['summary'])}**", ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]  # markdown already (the route's docstring)
    names = [name for requirement in op.get("security") or [] for name in requirement]
    auth = " or ".join(
        f"{name} (`Authorization: Bearer`)" if _bearer(schemes, name) else name for name in names
    )
    lines += [f"Authentication: {auth or 'none'}", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | description |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for p in params:
            schema = p.get("schema", {})
            text = p.get("description") or schema.get("description") or ""
            if schema.get("default") is not None:
                text = f"{text} (default {json.dumps(schema['default'])})".strip()
            lines.append(
                f"| {code(p['name'])} | {p['in']} | {_schema_md(schema)} "
                f"| {'yes' if p.get('required') else 'no'} | {md_text(text, table=True)} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        required = " (required)" if body.get("required") else ""
        for media, content in body.get("content", {}).items():
            shape = _schema_md(content.get("schema", {}))
            lines += [f"Request body{required}: `{media}`, {shape}", ""]
    lines += ["| status | meaning | body |", "| --- | --- | --- |"]
    for status, response in sorted(op.get("responses", {}).items()):
        media = next(iter(response.get("content", {}).values()), None)
        shape = _schema_md(media.get("schema", {})) if media else ""
        meaning = md_text(response.get("description", ""), table=True)
        lines.append(f"| {status} | {meaning} | {shape} |")
    lines.append("")
    return lines


def _bearer(schemes: dict[str, Any], name: str) -> bool:
    scheme = schemes.get(name, {})
    return scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_md(schema: dict[str, Any]) -> str:
    """A JSON schema's type as markdown for a table cell, with links to the named schemas."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{md_text(name, table=True)}](#schema-{slug(name)})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            text = " or ".join(_schema_md(s) for s in options) or "null"
            return f"{text} or null" if len(options) < len(schema[key]) else text
    if "enum" in schema:
        return "one of " + ", ".join(code(str(v)) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_md(schema.get('items', {}))}"
    if kind == "object" or "additionalProperties" in schema or "patternProperties" in schema:
        return "object"
    return f"{kind} ({md_text(schema['format'], table=True)})" if "format" in schema else kind


def _schema_section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {md_text(name)} {{#schema-{slug(name)}}}", ""]
    if schema.get("description"):
        lines += [md_text(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        return [*lines, _schema_md({k: v for k, v in schema.items() if k != "title"}), ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for field, spec in properties.items():
        text = spec.get("description", "")
        if spec.get("default") is not None:
            text = f"{text} (default {json.dumps(spec['default'])})".strip()
        lines.append(
            f"| {code(field)} | {_schema_md(spec)} | {'yes' if field in required else 'no'} "
            f"| {md_text(text, table=True)} |"
        )
    lines.append("")
    return lines


# --- MLS vendor profiles -------------------------------------------------------------------


def render_profiles_reference() -> str:
    """The vendor profiles as the code defines them: what each sets that `generic` does not."""
    from mls_sync.mls.profiles import PROFILES, VendorProfile

    defaults = {
        f.name: f.default
        for f in dataclasses.fields(VendorProfile)
        if f.default is not dataclasses.MISSING
    }
    shown = ("base_url_shape", "auth_kind", "key_field", "requests_per_second")
    lines = [
        "| profile | base URL | auth | key field | budget per credential | what else it sets |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, profile in PROFILES.items():
        budget = [f"{profile.requests_per_second:g}/s"]
        if profile.requests_per_hour:
            budget.append(f"{profile.requests_per_hour:,}/h")
        if profile.requests_per_day:
            budget.append(f"{profile.requests_per_day:,}/day")
        auth = profile.auth_kind + (f" ({code(profile.token_url)})" if profile.token_url else "")
        others = []
        for field in dataclasses.fields(VendorProfile):
            value = getattr(profile, field.name)
            skip = field.name in (
                *shown,
                "name",
                "token_url",
                "requests_per_hour",
                "requests_per_day",
            )
            if skip or field.name not in defaults or value == defaults[field.name]:
                continue
            if isinstance(value, frozenset):
                value = sorted(value)
            others.append(code(f"{field.name}={value}"))
        lines.append(
            f"| {code(name)} | {code(profile.base_url_shape)} | {auth} | {code(profile.key_field)} "
            f"| {', '.join(budget)} | {', '.join(others) or '—'} |"
        )
    return "\n".join(lines) + "\n"


def render_event_schemas() -> str:
    """One section per webhook event: what it means and its JSON Schema."""
    from mls_sync.domain.events import EVENT_TYPES, event_schemas

    parts = []
    for name, schema in event_schemas().items():
        doc = " ".join((EVENT_TYPES[name].__doc__ or "").split())
        parts.append(f"### `{name}`\n\n{doc}\n\n```json\n{json.dumps(schema, indent=2)}\n```\n")
    return "\n".join(parts)


# --- the MkDocs hook -------------------------------------------------------------------------

GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "configuration.md": ("<!-- generated: settings -->", render_settings_reference),
    "cli.md": ("<!-- generated: cli -->", render_cli_reference),
    "http-api.md": ("<!-- generated: openapi -->", render_api_reference),
    "connecting-an-mls.md": ("<!-- generated: mls-profiles -->", render_profiles_reference),
    "webhooks.md": ("<!-- generated: webhook-events -->", render_event_schemas),
}


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    entry = GENERATED.get(page.file.src_uri)
    if entry is None:
        return markdown
    marker, render = entry
    if marker not in markdown:
        raise PluginError(f"{page.file.src_uri}: the marker {marker} is missing")
    try:
        rendered = render()
    except Exception as exc:  # one line naming the page, not a traceback in the middle
        raise PluginError(f"{page.file.src_uri}: cannot generate the reference: {exc}") from exc
    return markdown.replace(marker, rendered)
