"""Which CSV column is which shared field.

Exports name their columns every way there is (``E-mail``, ``Email Address``, ``Company Name``,
``Job Title``, ``Country/Region``). A header is matched after folding case and dropping everything
but letters and digits, against, for each field the definition's ``[systems.csv.fields]`` maps:
the shared name, the native name, the field's label, and the aliases below. The
``CRMBRIDGE_CSV__COLUMNS`` setting comes first and may map any header to any mapped field, or
ignore a column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crmbridge import SettingsError, SystemMapping

ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("e-mail", "email address", "e-mail address", "mail", "work email", "business email"),
    "first_name": ("first name", "firstname", "given name", "forename", "first"),
    "last_name": ("last name", "lastname", "surname", "family name", "last"),
    "company": ("company name", "organization", "organisation", "account", "account name",
                "employer"),
    "job_title": ("job title", "title", "position", "role", "jobtitle"),
    "phone": ("phone number", "telephone", "tel", "mobile", "mobile phone", "work phone"),
    "country": ("country/region", "country region", "country code", "nation"),
    "employees": ("number of employees", "employee count", "company size", "headcount",
                  "employees", "num employees"),
    "industry": ("sector", "vertical"),
    "website": ("web site", "company website", "url", "domain", "homepage"),
    "lead_source": ("source", "lead source", "origin"),
}  # fmt: skip
"""Common export headers for the shared fields of the example definition."""

_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def header_key(header: str) -> str:
    """A header folded for matching: ``"  E-Mail Address\\ufeff"`` → ``"emailaddress"``."""
    return _NOT_ALNUM.sub("", header.replace("\ufeff", "").casefold())


@dataclass(frozen=True)
class ColumnPlan:
    """How one file's header maps: column index → shared field, and what was left out."""

    fields: dict[int, str]
    unused: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    def column_of(self, shared: str) -> int | None:
        for index, name in self.fields.items():
            if name == shared:
                return index
        return None


class ColumnMapper:
    """Resolves headers to shared fields for one system mapping and the ``columns`` setting."""

    def __init__(
        self,
        mapping: SystemMapping,
        overrides: Mapping[str, str | None],
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.overrides: dict[str, str | None] = {}
        for header, shared in overrides.items():
            target = shared.strip() if isinstance(shared, str) else None
            if target and target not in mapping.fields:
                raise SettingsError(
                    f"CRMBRIDGE_CSV__COLUMNS maps {header!r} to {target!r}, which "
                    f"[systems.{mapping.name}.fields] does not map",
                    plugin="csv",
                    field=header,
                    hint=f'use one of {", ".join(mapping.fields)}, or "" to ignore the column',
                )
            self.overrides[header_key(header)] = target or None
        self.defaults: dict[str, str] = {}
        for shared, native in mapping.fields.items():
            names = [shared, native, *ALIASES.get(shared, ())]
            if labels and shared in labels:
                names.append(labels[shared])
            for name in names:
                self.defaults.setdefault(header_key(name), shared)

    def plan(self, headers: Sequence[str]) -> ColumnPlan:
        """The columns of a file with these headers; the first column for a field wins."""
        fields: dict[int, str] = {}
        taken: dict[str, str] = {}
        unused: list[str] = []
        duplicates: list[tuple[str, str]] = []
        for index, header in enumerate(headers):
            key = header_key(header)
            shared = self.overrides[key] if key in self.overrides else self.defaults.get(key)
            if shared is None:
                if key:
                    unused.append(header)
                continue
            if shared in taken:
                duplicates.append((header, taken[shared]))
                continue
            taken[shared] = header
            fields[index] = shared
        return ColumnPlan(fields, unused, duplicates)
