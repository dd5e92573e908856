"""``crmbridge plugins``, ``check``, ``setup``, ``init``, ``config show``, ``db upgrade``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.cli.app import app, console, fail, options, reports_errors
from crmbridge.cli.common import bridge
from crmbridge.connector import CheckReport
from crmbridge.errors import CrmBridgeError
from crmbridge.plugins import plugin_infos
from crmbridge.settings import describe_settings, load_settings

config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="The state store's schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

DefinitionOption = Annotated[
    Path | None,
    typer.Option(
        "--definition", "-d", help="Lead definition file (default: CRMBRIDGE_DEFINITION)."
    ),
]


def _table(*headers: str) -> Table:
    """A table whose cells wrap instead of cutting text: piped output is only 80 columns wide,
    and a setting's name or a plugin's hook must never end in "…"."""
    table = Table()
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


@app.command()
@reports_errors
def plugins(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the plugins, their versions, the hooks they implement and what they register."""
    b = bridge(ctx)
    infos = plugin_infos(b.pm)
    if as_json:
        console.print_json(json.dumps([i.to_dict() for i in infos]))
        return
    table = _table("plugin", "kind", "version", "hooks", "connectors", "sandboxes")
    for i in infos:
        table.add_row(
            *map(
                escape,
                (
                    i.name,
                    i.kind,
                    i.version,
                    "\n".join(i.hooks),
                    ", ".join(i.connectors),
                    ", ".join(i.sandboxes),
                ),
            )
        )
    console.print(table)


@app.command()
@reports_errors
def check(
    ctx: typer.Context,
    definition: DefinitionOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the definition and plugins only.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check the lead definition, the plugins and each connected system against the definition.

    Connectors read the system's real picklists and properties and report drift: values with no
    mapping and mapped values that do not exist. Exits non-zero on any error or drift.
    """
    b = bridge(ctx, definition=definition)
    d = b.definition
    console.print(
        f"[green]✓[/] lead definition {escape(str(b.settings.definition))} (version "
        f"{escape(d.version)}, hash "
        f"{d.content_hash}): {len(d.stages)} stages, {len(d.fields)} fields, "
        f"{len(d.fit_rules) + len(d.engagement_rules)} scoring rules, systems "
        f"{escape(', '.join(d.systems))}",
        highlight=False,
        soft_wrap=True,
    )
    names = [p.name for p in plugin_infos(b.pm)]
    console.print(
        f"[green]✓[/] plugins: {escape(', '.join(names))}", highlight=False, soft_wrap=True
    )
    failed = warned = False
    if not offline:
        for role, name in (
            ("marketing", b.settings.pipeline.marketing),
            ("sales", b.settings.pipeline.sales),
        ):
            status, report = _check_connector(b, role, name)
            failed |= status == "error"
            warned |= status == "warning"
            if report is not None:
                _print_report(report)
    if failed or (strict and warned):
        raise typer.Exit(1)


def _check_connector(b: CrmBridge, role: str, name: str) -> tuple[str, CheckReport | None]:
    if name not in b.connector_classes:
        console.print(
            f"[red]✗[/] {role} connector {escape(repr(name))} is not installed",
            highlight=False,
            soft_wrap=True,
        )
        return "error", None
    if not b.connector_configured(name):
        console.print(
            f"[yellow]![/] {role} connector {escape(repr(name))} is not configured (no CRMBRIDGE_"
            f"{name.upper()}__* settings); skipped",
            highlight=False,
            soft_wrap=True,
        )
        return "warning", None
    try:
        with b.connector(name) as connector:
            report = connector.check()
    except CrmBridgeError as exc:
        console.print(
            f"[red]✗[/] {role} connector {escape(repr(name))}: {escape(str(exc))}",
            highlight=False,
            soft_wrap=True,
        )
        return "error", None
    return ("ok" if report.ok else "error"), report


def _print_report(report: CheckReport) -> None:
    marks = {"ok": "[green]✓[/]", "warning": "[yellow]![/]", "error": "[red]✗[/]"}
    for item in report.items:
        fix = f" — {escape(item.fix)}" if item.fix else ""
        console.print(
            f"{marks.get(item.level, '?')} {escape(report.system)}: {escape(item.subject)}: "
            f"{escape(item.message)}{fix}",
            highlight=False,
            soft_wrap=True,
        )
    for drift in report.drift:
        console.print(
            f"[red]✗[/] {escape(report.system)}: drift: {escape(drift.message)}",
            highlight=False,
            soft_wrap=True,
        )
    if report.ok:
        console.print(
            f"[green]✓[/] {escape(report.system)}: matches the lead definition",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@reports_errors
def setup(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be created.")] = False,
) -> None:
    """Create the custom fields and properties crmbridge writes, in each connected system.

    Idempotent: a second run changes nothing. What cannot be created through the API is printed
    for an admin to add.
    """
    b = bridge(ctx)
    for name in dict.fromkeys((b.settings.pipeline.marketing, b.settings.pipeline.sales)):
        if name in b.connector_classes and not b.connector_configured(name):
            console.print(
                f"[yellow]![/] connector {name!r} is not configured (no CRMBRIDGE_"
                f"{name.upper()}__* settings); skipped",
                highlight=False,
            )
            continue
        with b.connector(name) as connector:
            report = connector.setup(dry_run=dry_run)
        verb = "would create" if dry_run else "created"
        for item in report.created:
            console.print(
                f"[green]+[/] {escape(name)}: {verb} {escape(item)}",
                highlight=False,
                soft_wrap=True,
            )
        for item in report.existing:
            console.print(
                f"[dim]=[/] {escape(name)}: {escape(item)} exists", highlight=False, soft_wrap=True
            )
        for item in report.manual:
            console.print(
                f"[yellow]![/] {escape(name)}: an admin must add {escape(item)}",
                highlight=False,
                soft_wrap=True,
            )
        if not report.changed:
            console.print(
                f"{name}: nothing to change", highlight=False, soft_wrap=True, markup=False
            )


STARTER_ENV = """\
# crmbridge settings. Every variable starts with CRMBRIDGE_; nested ones use __.
# Precedence: environment variables > later --env-file > earlier --env-file > defaults.
# Keep this file private (chmod 600): it holds secrets.

CRMBRIDGE_DEFINITION={definition}
CRMBRIDGE_DATABASE_URL=sqlite:///{database}

# The pipeline: marketing (source of leads, receives outcomes) and sales (receives handoffs).
CRMBRIDGE_PIPELINE__NAME=default
CRMBRIDGE_PIPELINE__MARKETING=hubspot
CRMBRIDGE_PIPELINE__SALES=salesforce
CRMBRIDGE_PIPELINE__POLL_SECONDS=15

# Leave this share of each system's API quota to everyone else.
CRMBRIDGE_QUOTA_RESERVE=0.2

# HubSpot private app token; scopes: crm.objects.contacts.read/write and
# crm.schemas.contacts.read/write.
CRMBRIDGE_HUBSPOT__ACCESS_TOKEN=

# Salesforce connected app, OAuth client credentials flow (the default).
CRMBRIDGE_SALESFORCE__DOMAIN=your-org.my
CRMBRIDGE_SALESFORCE__CLIENT_ID=
CRMBRIDGE_SALESFORCE__CLIENT_SECRET=
"""


@app.command()
@reports_errors
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write .env and the definition to.")
    ] = Path("."),
) -> None:
    """Write a starter .env and lead definition to a folder (never overwriting a file)."""
    env_path = directory / ".env"
    definition_path = directory / "lead-definition.toml"
    existing = [p for p in (env_path, definition_path) if p.exists()]
    if existing:
        fail(
            f"{', '.join(map(str, existing))} already exist{'s' if len(existing) == 1 else ''}; "
            "nothing was written",
            hint="choose another folder or move the file away",
        )
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_definition_path(), definition_path)
    env_path.write_text(
        STARTER_ENV.format(
            definition=definition_path.resolve(),
            database=(directory / "crmbridge.sqlite3").resolve(),
        ),
        encoding="utf-8",
    )
    os.chmod(env_path, 0o600)
    console.print(
        f"wrote {env_path} (mode 600) and {definition_path}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"next: fill in the secrets, then run: crmbridge --env-file {env_path} check",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


@config_app.command("show")
@reports_errors
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective settings, secrets redacted, and where each value came from."""
    settings = load_settings(options(ctx).env_files)
    b = CrmBridge(settings)
    sections = {}
    for name in dict.fromkeys((settings.pipeline.marketing, settings.pipeline.sales)):
        if name in b.connector_classes and b.connector_configured(name):
            sections[name] = b.settings_of(name)
    rows = describe_settings(settings, sections)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    table = _table("setting", "value", "from")
    for r in rows:
        table.add_row(escape(r.key), escape(r.value), escape(r.source))
    console.print(table)


@db_app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Bring the state store's schema up to date (safe to run any time)."""
    from crmbridge.store.engine import create_store_engine
    from crmbridge.store.migrate import current_revision, upgrade

    settings = load_settings(options(ctx).env_files)
    engine = create_store_engine(settings.database_url.get_secret_value())
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    where = settings.database_url_display
    if before == after:
        console.print(
            f"{where}: schema is current ({after})", highlight=False, soft_wrap=True, markup=False
        )
    else:
        console.print(
            f"{where}: schema upgraded {before or 'empty'} → {after}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    engine.dispose()
