"""The composition root: settings, the lead definition, plugins, connectors and the store, built
once and handed to the commands, the daemon and tests.

Embedding crmbridge looks like::

    bridge = CrmBridge.from_env_files(["prod.env"])
    bridge.check()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from crmbridge.connector import Connector, ConnectorSettings
from crmbridge.context import HookContext, utcnow
from crmbridge.definition import LeadDefinition
from crmbridge.errors import ConfigurationError, SettingsError
from crmbridge.logs import register_secrets_of
from crmbridge.plugins import PluginManager, connector_classes, make_plugin_manager
from crmbridge.settings import PREFIX, Settings, connector_settings, load_settings
from crmbridge.store import Store, open_store

log = logging.getLogger("crmbridge")


class CrmBridge:
    """Everything a command needs, built lazily from one :class:`Settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        plugin_manager: PluginManager | None = None,
        definition: LeadDefinition | None = None,
        clock: Callable[[], datetime] = utcnow,
        entrypoints: bool = True,
        extra_plugins: Sequence[tuple[str, object]] = (),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._pm = plugin_manager
        self._definition = definition
        self._entrypoints = entrypoints
        self._extra_plugins = list(extra_plugins)
        self._connector_settings: dict[str, ConnectorSettings] = {}
        register_secrets_of(settings)

    @classmethod
    def from_env_files(
        cls, env_files: Sequence[str | os.PathLike[str]] = (), **kw: Any
    ) -> CrmBridge:
        return cls(load_settings(env_files), **kw)

    # -- parts -------------------------------------------------------------------------------

    @property
    def definition(self) -> LeadDefinition:
        if self._definition is None:
            self._definition = LeadDefinition.load(self.settings.definition)
        return self._definition

    def reload_definition(self) -> LeadDefinition:
        """Read the definition file again; on error the old one stays and the error is raised."""
        fresh = LeadDefinition.load(self.settings.definition)
        self._definition = fresh
        return fresh

    def use_definition(self, definition: LeadDefinition) -> None:
        """Use ``definition`` from now on (connectors made from now on map through it)."""
        self._definition = definition

    @property
    def pm(self) -> PluginManager:
        if self._pm is None:
            self._pm = make_plugin_manager(
                self.settings, entrypoints=self._entrypoints, extra=self._extra_plugins
            )
        return self._pm

    @cached_property
    def connector_classes(self) -> dict[str, type[Connector]]:
        return connector_classes(self.pm)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.database_url.get_secret_value())

    def connector_class(self, name: str) -> type[Connector]:
        try:
            return self.connector_classes[name]
        except KeyError:
            known = ", ".join(sorted(self.connector_classes)) or "none"
            raise ConfigurationError(
                f"no connector named {name!r} is installed (installed: {known})",
                hint="install its plugin, or fix CRMBRIDGE_PIPELINE__MARKETING / __SALES",
            ) from None

    def connector_configured(self, name: str) -> bool:
        """Whether any ``CRMBRIDGE_<NAME>__*`` setting is given (in a file or the environment)."""
        prefix = f"{PREFIX}{name.upper()}__"
        if any(k.upper().startswith(prefix) for k in os.environ):
            return True
        from dotenv import dotenv_values

        return any(
            k.upper().startswith(prefix) for f in self.settings.env_files for k in dotenv_values(f)
        )

    def settings_of(self, name: str) -> ConnectorSettings:
        """The connector's settings, read once (secrets registered for redaction)."""
        if name not in self._connector_settings:
            cls = self.connector_class(name)
            try:
                section = connector_settings(cls.settings_class, name, self.settings)
            except SettingsError as exc:
                raise SettingsError(
                    f"connector {name!r} is not configured: {exc.message}",
                    plugin=name,
                    hint=f"set the {PREFIX}{name.upper()}__* variables in an env file",
                ) from None
            register_secrets_of(section)
            self._connector_settings[name] = section
        return self._connector_settings[name]

    def connector(self, name: str) -> Connector:
        """A new connector instance for ``name``, with its settings and the definition."""
        cls = self.connector_class(name)
        return cls(
            self.settings_of(name),
            self.definition,
            log=logging.getLogger(f"crmbridge.connector.{name}"),
        )

    def context(
        self,
        *,
        run_id: str | None = None,
        pipeline: str | None = None,
        dry_run: bool = False,
        store: Store | None = None,
    ) -> HookContext:
        return HookContext(
            settings=self.settings,
            definition=self.definition,
            store=store,
            log=logging.getLogger("crmbridge.plugins"),
            run_id=run_id,
            pipeline=pipeline,
            dry_run=dry_run,
            now=self.clock,
        )


def default_definition_path() -> Path:
    """The packaged example definition (``crmbridge init`` copies it)."""
    from importlib.resources import files

    packaged = files("crmbridge") / "data" / "lead-definition.toml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "configs" / "lead-definition.toml"
