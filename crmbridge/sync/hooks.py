"""Calling hooks from the engine: collect-all, firstresult and notify, with a failing plugin named.

Notify hooks never stop the cycle: an exception is logged with the plugin's name and counted. A
decision hook that raises fails only the lead it was deciding on (the engine quarantines it with
:class:`PluginFailed`). Hooks no plugin implements are skipped without a call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from crmbridge.errors import RecordError
from crmbridge.plugins import PluginManager, failing_plugin

log = logging.getLogger("crmbridge.sync")


class PluginFailed(RecordError):
    """A plugin raised while deciding about one record."""


class HookRunner:
    """The engine's way to call hooks (always through ``pm.hook``, with keyword arguments)."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self.errors = 0
        self._implemented = {
            name: bool(getattr(pm.hook, name).get_hookimpls())
            for name in dir(pm.hook)
            if name.startswith("crm_")
        }

    def implemented(self, name: str) -> bool:
        return self._implemented.get(name, False)

    def collect(self, name: str, **kwargs: Any) -> list[Any]:
        """Every plugin's non-``None`` result, in call order (raises :class:`PluginFailed`)."""
        if not self._implemented.get(name):
            return []
        try:
            return list(getattr(self.pm.hook, name)(**kwargs))
        except Exception as exc:
            raise self._failed(name, exc) from exc

    def flatten(self, name: str, **kwargs: Any) -> list[Any]:
        """The results of a hook whose implementations return lists, joined."""
        out: list[Any] = []
        for result in self.collect(name, **kwargs):
            if isinstance(result, Iterable) and not isinstance(result, str | bytes):
                out.extend(result)
            else:
                out.append(result)
        return out

    def first(self, name: str, **kwargs: Any) -> Any:
        """The first non-``None`` result of a firstresult hook (raises :class:`PluginFailed`)."""
        if not self._implemented.get(name):
            return None
        try:
            return getattr(self.pm.hook, name)(**kwargs)
        except Exception as exc:
            raise self._failed(name, exc) from exc

    def notify(self, name: str, **kwargs: Any) -> None:
        """Call a notify hook; a plugin's exception is logged with its name, never raised."""
        if not self._implemented.get(name):
            return
        try:
            getattr(self.pm.hook, name)(**kwargs)
        except Exception as exc:
            self.errors += 1
            plugin = failing_plugin(self.pm, name, exc) or "unknown plugin"
            log.error(
                "plugin %s failed in %s: %s: %s; the cycle goes on",
                plugin,
                name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )

    def _failed(self, name: str, exc: Exception) -> PluginFailed:
        plugin = failing_plugin(self.pm, name, exc) or "unknown plugin"
        return PluginFailed(
            f"plugin {plugin} failed in {name}: {type(exc).__name__}: {exc}",
            plugin=plugin,
            rule=f"plugin:{plugin}",
        )
