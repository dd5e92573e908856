"""Reading a TOML document while collecting every problem with its dotted key and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crmbridge.errors import DefinitionError, DefinitionProblem
from crmbridge.textutil import listing, toml_key

if TYPE_CHECKING:
    from crmbridge.definition import LeadDefinition


class TomlReader:
    """Reads TOML tables, collecting every problem with its dotted key."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[DefinitionProblem] = []

    def problem(self, key: str, message: str, fix: str = "") -> None:
        self.problems.append(DefinitionProblem(key, message, fix))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DefinitionError(self.filename, self.problems)

    def _key(self, parent: str, name: str) -> str:
        return f"{parent}.{name}" if parent else name

    def require_table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            self.problem(key, "is missing" if value is None else "must be a table", f"add [{key}]")
            return {}
        return value

    def table(self, data: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
        value = data.get(dotted.rsplit(".", 1)[-1], {})
        if not isinstance(value, Mapping):
            self.problem(dotted, "must be a table", f"write [{dotted}]")
            return {}
        return value

    def require_str(self, data: Mapping[str, Any], name: str, parent: str = "") -> str | None:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            key = self._key(parent, name)
            self.problem(
                key,
                "is missing" if value is None else "must be non-empty text",
                f'set {name} = "..."',
            )
            return None
        return value

    def opt_str(self, data: Mapping[str, Any], name: str, parent: str = "") -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(self._key(parent, name), f"must be text, not {value!r}", "quote it")
            return None
        return value

    def opt_int(self, data: Mapping[str, Any], name: str, parent: str = "") -> int | None:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(self._key(parent, name), f"must be a whole number, not {value!r}", "")
            return None
        return value

    def opt_number(self, data: Mapping[str, Any], name: str, parent: str = "") -> float | None:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(self._key(parent, name), f"must be a number, not {value!r}", "")
            return None
        return float(value)

    def str_list(
        self, data: Mapping[str, Any], dotted: str, *, required: bool = False
    ) -> list[str]:
        value = data.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            if required:
                self.problem(dotted, "is missing", "list the values")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(dotted, "must be a list of text values", 'e.g. ["a", "b"]')
            return []
        return list(value)

    def unknown_keys(self, data: Mapping[str, Any], parent: str, known: set[str]) -> None:
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), sorted(known), n=1) or [
                    k for k in sorted(known) if k[:3] == str(name)[:3]
                ]
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known keys: {listing(sorted(known))}"
                )
                self.problem(self._key(parent, toml_key(str(name))), "is not a known key", hint)

    def check_stage(
        self, d: LeadDefinition, key: str, name: str, *, funnel_only: bool = False
    ) -> bool:
        stage = d.stages.get(name)
        if stage is None:
            self.problem(
                key,
                f"refers to stage {name!r}, which is not in [stages]",
                f"use one of {listing(d.stages)}",
            )
            return False
        if funnel_only and stage.side:
            self.problem(
                key,
                f"refers to side state {name!r}; a funnel stage is needed here",
                f"use one of {listing(s.name for s in d.funnel)}",
            )
            return False
        return True
