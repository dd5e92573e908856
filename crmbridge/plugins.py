"""The plugin manager factory: specs, built-ins, entry points, the local file, ``check_pending``.

Nothing is loaded at import time. :func:`make_plugin_manager` builds a manager in a fixed order:

1. the hook specifications (:mod:`crmbridge.hookspecs`);
2. the built-in plugins (:data:`crmbridge.builtin.BUILTIN_PLUGINS`);
3. installed plugins, from the ``crmbridge`` entry-point group;
4. the one-file local plugin named by ``CRMBRIDGE_PLUGIN_FILE``;
5. ``check_pending()``, so a misspelled hook name stops start-up.

A plugin that fails to load stops start-up with its name and the reason; it is never skipped
silently. ``CRMBRIDGE_LOAD_PLUGINS`` (only these), ``CRMBRIDGE_DISABLE_PLUGINS`` (not these) and
``CRMBRIDGE_TRACE_PLUGINS`` (log every hook call) are the operator's switches.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from crmbridge import hookspecs
from crmbridge.builtin import BUILTIN_PLUGINS
from crmbridge.connector import Connector
from crmbridge.errors import DuplicateConnectorError, PluginLoadError

if TYPE_CHECKING:
    from crmbridge.settings import Settings
    from crmbridge.testing.sandbox import Emulator

ENTRY_POINT_GROUP = "crmbridge"
log = logging.getLogger("crmbridge.plugins")


@dataclass(frozen=True)
class PluginOrigin:
    """Where a registered plugin came from."""

    name: str
    kind: str  # "builtin", "entrypoint" or "local"
    module: str
    version: str
    distribution: str | None = None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.origins: dict[str, PluginOrigin] = {}

    def register_origin(self, plugin: object, origin: PluginOrigin) -> None:
        try:
            self.register(plugin, name=origin.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginLoadError(
                f"plugin {origin.name!r} ({origin.module}) cannot be registered: {exc}",
                plugin=origin.name,
                hint="check its hook implementations against docs/hooks.md",
            ) from exc
        self.origins[origin.name] = origin


def make_plugin_manager(
    settings: Settings | None = None,
    *,
    entrypoints: bool = True,
    extra: Iterable[tuple[str, object]] = (),
) -> PluginManager:
    """A ready plugin manager.

    :param settings: the operator switches (load, disable, trace, local file); ``None`` means none.
    :param entrypoints: load installed plugins (tests of the core may turn this off).
    :param extra: ``(name, plugin)`` pairs to register after the installed ones (tests, embedding).
    """
    from crmbridge import __version__

    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    only = set(settings.load_plugins) if settings and settings.load_plugins is not None else None
    disabled = set(settings.disable_plugins) if settings else set()

    for name, module_name in BUILTIN_PLUGINS.items():
        if name in disabled:
            continue
        module = importlib.import_module(module_name)
        pm.register_origin(module, PluginOrigin(name, "builtin", module_name, __version__))

    if entrypoints:
        _load_entrypoints(pm, only, disabled)

    plugin_file = settings.plugin_file if settings else None
    if plugin_file is not None:
        module = _load_file(Path(plugin_file))
        pm.register_origin(
            module, PluginOrigin(module.__name__, "local", str(plugin_file), "local")
        )

    for name, plugin in extra:
        module_name = getattr(plugin, "__name__", type(plugin).__name__)
        pm.register_origin(plugin, PluginOrigin(name, "local", module_name, "local"))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(
            f"plugin {_plugin_name(pm, exc.plugin)!r} implements a hook crmbridge does not have: "
            f"{exc}",
            plugin=_plugin_name(pm, exc.plugin),
            hint="hook names start with crm_; see docs/hooks.md for the list",
        ) from exc

    if settings is not None and settings.trace_plugins:
        trace_log = logging.getLogger("crmbridge.plugins.trace")
        pm.trace.root.setwriter(lambda text: trace_log.debug(text.rstrip()))
        pm.enable_tracing()
    return pm


def _load_entrypoints(pm: PluginManager, only: set[str] | None, disabled: set[str]) -> None:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    if only is not None:
        unknown = only - set(found) - set(BUILTIN_PLUGINS)
        if unknown:
            raise PluginLoadError(
                f"CRMBRIDGE_LOAD_PLUGINS names {', '.join(sorted(unknown))}, which "
                f"{'is' if len(unknown) == 1 else 'are'} not installed; installed: "
                f"{', '.join(sorted(found)) or 'none'}",
                hint="install the plugin or fix the name",
            )
    for name, ep in sorted(found.items()):
        if name in disabled or (only is not None and name not in only):
            continue
        dist = ep.dist
        version = dist.version if dist is not None else "unknown"
        dist_name = str(dist.metadata["Name"]) if dist is not None else None
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"plugin {name!r} ({ep.value}, from {dist_name or 'an unknown distribution'} "
                f"{version}) failed to load: {type(exc).__name__}: {exc}",
                plugin=name,
                hint=f"fix or uninstall it, or skip it with CRMBRIDGE_DISABLE_PLUGINS={name}",
            ) from exc
        pm.register_origin(plugin, PluginOrigin(name, "entrypoint", ep.value, version, dist_name))


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise PluginLoadError(
            f"plugin file {path} does not exist",
            plugin=str(path),
            hint="check CRMBRIDGE_PLUGIN_FILE",
        )
    module_name = f"crmbridge_local_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"plugin file {path} cannot be imported", plugin=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginLoadError(
            f"plugin file {path} failed to load: {type(exc).__name__}: {exc}",
            plugin=str(path),
            hint="fix the file or unset CRMBRIDGE_PLUGIN_FILE",
        ) from exc
    return module


def _plugin_name(pm: PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or repr(plugin)


# -- registries ----------------------------------------------------------------------------------


def _collect(pm: PluginManager, hook: str) -> list[tuple[str, type[Any]]]:
    """Call a registration hook once per plugin, so each registration is tied to its plugin."""
    out: list[tuple[str, type[Any]]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or not hasattr(plugin, hook):
            continue
        others = [p for n, p in pm.list_name_plugin() if n != name and p is not None]
        caller = pm.subset_hook_caller(hook, remove_plugins=others)

        def register(cls: type[Any], _name: str = name) -> None:
            out.append((_name, cls))

        caller(register=register)
    return out


def connector_classes(pm: PluginManager) -> dict[str, type[Connector]]:
    """Connector name → class, from every plugin's ``crm_register_connectors``.

    A name registered twice is a :class:`DuplicateConnectorError` naming both classes.
    """
    found: dict[str, tuple[str, type[Connector]]] = {}
    for plugin, cls in _collect(pm, "crm_register_connectors"):
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise PluginLoadError(
                f"plugin {plugin!r} registered {cls!r}, which is not a Connector subclass",
                plugin=plugin,
            )
        try:
            cls.validate_class()
        except TypeError as exc:
            raise PluginLoadError(str(exc), plugin=plugin) from exc
        if cls.name in found:
            first_plugin, first = found[cls.name]
            raise DuplicateConnectorError(
                f"connector name {cls.name!r} is registered twice: by {_qual(first)} (plugin "
                f"{first_plugin!r}) and by {_qual(cls)} (plugin {plugin!r})",
                plugin=plugin,
                hint="rename one connector or disable one plugin with CRMBRIDGE_DISABLE_PLUGINS",
            )
        found[cls.name] = (plugin, cls)
    return {name: cls for name, (_plugin, cls) in found.items()}


def sandbox_classes(pm: PluginManager) -> dict[str, type[Emulator]]:
    """Sandbox name → emulator class, from every plugin's ``crm_register_sandboxes``."""
    from crmbridge.testing.sandbox import Emulator

    found: dict[str, tuple[str, type[Emulator]]] = {}
    for plugin, cls in _collect(pm, "crm_register_sandboxes"):
        if not (isinstance(cls, type) and issubclass(cls, Emulator)):
            raise PluginLoadError(
                f"plugin {plugin!r} registered {cls!r}, which is not a sandbox Emulator subclass",
                plugin=plugin,
            )
        if cls.name in found:
            raise PluginLoadError(
                f"sandbox name {cls.name!r} is registered twice: by {_qual(found[cls.name][1])} "
                f"(plugin {found[cls.name][0]!r}) and by {_qual(cls)} (plugin {plugin!r})",
                plugin=plugin,
            )
        found[cls.name] = (plugin, cls)
    return {name: cls for name, (_plugin, cls) in found.items()}


def _qual(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class PluginInfo:
    """What ``crmbridge plugins`` shows for one plugin."""

    name: str
    kind: str
    version: str
    module: str
    distribution: str | None
    hooks: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)
    sandboxes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "module": self.module,
            "distribution": self.distribution,
            "hooks": self.hooks,
            "connectors": self.connectors,
            "sandboxes": self.sandboxes,
        }


def plugin_infos(pm: PluginManager) -> list[PluginInfo]:
    """Every registered plugin: name, version, hooks, and the connectors and sandboxes it adds."""
    by_plugin_connectors: dict[str, list[str]] = {}
    for owner, cls in _collect(pm, "crm_register_connectors"):
        by_plugin_connectors.setdefault(owner, []).append(cls.name)
    by_plugin_sandboxes: dict[str, list[str]] = {}
    for owner, cls in _collect(pm, "crm_register_sandboxes"):
        by_plugin_sandboxes.setdefault(owner, []).append(cls.name)
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        origin = pm.origins.get(name) or PluginOrigin(name, "unknown", repr(plugin), "unknown")
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                kind=origin.kind,
                version=origin.version,
                module=origin.module,
                distribution=origin.distribution,
                hooks=hooks,
                connectors=sorted(by_plugin_connectors.get(name, [])),
                sandboxes=sorted(by_plugin_sandboxes.get(name, [])),
            )
        )
    return infos


def failing_plugin(pm: PluginManager, hook_name: str, exc: BaseException) -> str | None:
    """The name of the plugin whose implementation of ``hook_name`` raised ``exc``, if known."""
    caller = getattr(pm.hook, hook_name, None)
    if caller is None:
        return None
    codes: Mapping[Any, str] = {  # the code object of each implementation → its plugin
        impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()
    }
    tb = exc.__traceback__
    name = None
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code)
        if found is not None:
            name = found
        tb = tb.tb_next
    return name


HookCall = Callable[..., Any]
