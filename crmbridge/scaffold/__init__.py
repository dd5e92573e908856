"""``crmbridge plugin new``: a plugin distribution that installs and passes its own tests at once.

Two kinds, each a folder of templates under ``templates/`` (shipped in the wheel as package data):

* ``hooks`` — a plugin module with hook implementations (a scoring rule and a quarantine alert),
  tests through the plugin manager and a sync cycle on crmbridge's in-memory connectors;
* ``connector`` — a :class:`crmbridge.Connector` over a JSON file standing in for the vendor's API
  (settings, ``pull_changes``, ``fetch``, ``write_outcomes``, ``check``, ``setup``,
  ``api_usage``), the ``[systems.<name>]`` snippet for the lead definition, and tests that run the
  connector conformance suite.

Files under ``templates/common/`` go into both kinds. Templates are :class:`string.Template`
text (``${package}``); in paths, ``_package_`` and ``_module_`` stand for the package and the
plugin's name, the ``.tmpl`` suffix is dropped, and ``gitignore`` becomes ``.gitignore``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from crmbridge.errors import ConfigurationError

KINDS = ("hooks", "connector")
PREFIX = "crmbridge-"
_ALLOWED = re.compile(r"[a-z0-9_-]")
_SHAPE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


class ScaffoldError(ConfigurationError):
    """A plugin cannot be created: a bad name, or its folder exists."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a new plugin needs, derived from the one the author gave.

    ``crmbridge plugin new acme-crm`` gives the distribution ``crmbridge-acme-crm`` (also the
    folder), the package ``crmbridge_acme_crm``, the entry point and connector name ``acme_crm``
    (the ``CRMBRIDGE_ACME_CRM__*`` settings prefix), and the class name ``AcmeCrm``.
    """

    name: str
    dist: str
    package: str
    entry_point: str
    class_name: str
    title: str

    def substitutions(self) -> dict[str, str]:
        from crmbridge import __version__

        major, minor = __version__.split(".")[:2]
        return {
            "name": self.name,
            "dist": self.dist,
            "package": self.package,
            "entry_point": self.entry_point,
            "class_name": self.class_name,
            "title": self.title,
            "env_prefix": f"CRMBRIDGE_{self.entry_point.upper()}__",
            "crmbridge_min": f"{major}.{minor}",
        }


def plugin_names(name: str) -> PluginNames:
    """Check ``name`` and derive the others; :class:`ScaffoldError` names what is wrong."""
    given = name.strip()
    base = given[len(PREFIX) :] if given.startswith(PREFIX) else given
    if not base:
        raise ScaffoldError(
            f"plugin name {given!r} is empty once the {PREFIX!r} prefix is taken off",
            hint="name it after what it does, e.g. `crmbridge plugin new territory-routing`",
        )
    for position, char in enumerate(base, 1):
        if not _ALLOWED.fullmatch(char):
            shown = "a space" if char.isspace() else repr(char)
            raise ScaffoldError(
                f"plugin name {base!r} has {shown} at position {position}; use lower-case "
                "letters, digits, '-' and '_'",
                hint=f"for example {_suggest(base)!r}",
            )
    if not _SHAPE.fullmatch(base):
        raise ScaffoldError(
            f"plugin name {base!r} must start with a letter, and '-' or '_' must stand between "
            "letters or digits",
            hint=f"for example {_suggest(base)!r}",
        )
    entry_point = base.replace("-", "_")
    class_name = "".join(part.capitalize() for part in entry_point.split("_"))
    return PluginNames(
        name=base,
        dist=PREFIX + base.replace("_", "-"),
        package="crmbridge_" + entry_point,
        entry_point=entry_point,
        class_name=class_name,
        title=" ".join(part.capitalize() for part in entry_point.split("_")),
    )


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    cleaned = re.sub(r"^[0-9-]+", "", cleaned)
    return cleaned or "my-plugin"


@dataclass
class CreatedPlugin:
    """What :func:`create_plugin` wrote."""

    path: Path
    names: PluginNames
    kind: str
    files: list[Path] = field(default_factory=list)


def render(kind: str, names: PluginNames) -> dict[str, str]:
    """Relative path → content of every file of a new plugin of ``kind``."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
    values = names.substitutions()
    root = files("crmbridge.scaffold") / "templates"
    out: dict[str, str] = {}
    for folder in ("common", kind):
        for relative, template in _templates(root / folder, ""):
            path = relative.replace("_package_", names.package)
            path = path.replace("_module_", names.entry_point).removesuffix(".tmpl")
            if path == "gitignore":  # a dot-file would be left out of some wheels
                path = ".gitignore"
            out[path] = string.Template(template).substitute(values)
    return dict(sorted(out.items()))


def _templates(folder: Traversable, prefix: str) -> Iterator[tuple[str, str]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _templates(entry, relative + "/")
        elif entry.name.endswith(".tmpl"):
            yield relative, entry.read_text(encoding="utf-8")


def create_plugin(name: str, directory: Path, *, kind: str = "hooks") -> CreatedPlugin:
    """Write a new plugin distribution into ``directory/<dist>``; never over an existing one."""
    names = plugin_names(name)
    target = directory / names.dist
    if target.exists():
        raise ScaffoldError(
            f"{target} already exists; nothing was written",
            hint="choose another name or another --directory",
        )
    rendered = render(kind, names)
    created = CreatedPlugin(target, names, kind)
    target.mkdir(parents=True)
    for relative, content in rendered.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        created.files.append(path)
    return created
