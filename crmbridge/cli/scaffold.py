"""``crmbridge plugin new NAME``: start a plugin distribution that installs and passes its tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crmbridge.cli.app import app, console, reports_errors
from crmbridge.scaffold import create_plugin

plugin_app = typer.Typer(help="Write your own plugins.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("new")
@reports_errors
def new(
    name: Annotated[
        str,
        typer.Argument(
            help="What the plugin does, in lower case with '-' (e.g. territory-routing); the "
            "distribution is crmbridge-NAME."
        ),
    ],
    connector: Annotated[
        bool,
        typer.Option(
            "--connector", help="A connector to a system, with the conformance suite in its tests."
        ),
    ] = False,
    directory: Annotated[
        Path,
        typer.Option(
            "--directory", "-d", help="Folder to create the plugin's folder in.", file_okay=False
        ),
    ] = Path("."),
) -> None:
    """Create a plugin distribution: pyproject.toml with the crmbridge entry point, a package,
    a README and tests that pass once it is installed. Never writes over an existing folder."""
    created = create_plugin(name, directory, kind="connector" if connector else "hooks")
    names = created.names
    what = f"a connector, {names.entry_point!r}" if connector else "a hook plugin"
    say = console.print
    say(f"created {created.path} ({what}):", highlight=False, markup=False, soft_wrap=True)
    for path in created.files:
        say(f"  {path.relative_to(created.path)}", highlight=False, markup=False)
    say("next:", highlight=False, markup=False)
    steps = [f"cd {created.path}", "pip install -e '.[test]'", "pytest"]
    if connector:
        steps.append(
            f"cat {names.package}/systems.toml >> YOUR-lead-definition.toml   "
            f"# the [systems.{names.entry_point}] mapping"
        )
    steps.append(f"crmbridge plugins   # lists {names.entry_point!r}")
    for step in steps:
        say(f"  {step}", highlight=False, markup=False, soft_wrap=True)
