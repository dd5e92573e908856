"""The ``crmbridge`` command: one typer app, its global options, and error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from crmbridge.errors import ConfigurationError, CrmBridgeError, FatalError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="crmbridge",
    help="Keeps marketing and sales working from one definition of a lead.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, shared by every command through typer's context."""

    env_files: list[Path] = field(default_factory=list)


@app.callback()
def main_callback(
    ctx: typer.Context,
    env_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            "-e",
            help="Env file to read settings from; repeat it, later files win. Environment "
            "variables win over every file.",
        ),
    ] = None,
) -> None:
    """Keeps marketing and sales working from one definition of a lead."""
    ctx.obj = Options(env_files=list(env_file or []))


def options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Options) else Options()


def fail(message: str, code: int = 1, hint: str | None = None) -> NoReturn:
    """Print ``error: message`` (and the hint) to stderr and exit with ``code``."""
    err_console.print(
        f"[bold red]error:[/] {_escape(message)}", highlight=False, markup=True, soft_wrap=True
    )
    if hint:
        err_console.print(f"[dim]hint: {_escape(hint)}[/]", highlight=False)
    raise typer.Exit(code)


def reports_errors(func: F) -> F:
    """Turn crmbridge errors into one clear message and an exit code (2: configuration)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            _print_error(exc)
            raise typer.Exit(2) from None
        except FatalError as exc:
            _print_error(exc)
            raise typer.Exit(3) from None
        except CrmBridgeError as exc:
            _print_error(exc)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_error(exc: CrmBridgeError) -> None:
    for line in str(exc).splitlines():
        err_console.print(f"[bold red]error:[/] {_escape(line)}", highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def main() -> None:
    """Entry point of the ``crmbridge`` console script."""
    sys.exit(app())
