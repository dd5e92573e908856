"""Field values: checking them against their type, and reading native values into it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmbridge.lead import normalize_email
from crmbridge.textutil import clip, listing

if TYPE_CHECKING:
    from crmbridge.definition import FieldSpec


@dataclass(frozen=True, slots=True)
class Problem:
    """A lead breaking the definition: the field, the rule it broke, and a sentence about it."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (rule {self.rule})"


_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
_EMAIL_LOCAL = re.compile(rf'(?:{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*|"(?:[^"\\\r\n]|\\.)*")')
_LABEL = r"(?!-)[A-Za-z0-9\u0080-\U0010ffff-]{1,63}(?<!-)"
_EMAIL_DOMAIN = re.compile(
    rf"(?:{_LABEL}(?:\.{_LABEL})*\.[A-Za-z\u0080-\U0010ffff]{{2,63}}|\[[^\]\s]+\])"
)
_PHONE = re.compile(r"^\+?[0-9 ()./\-]{5,}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)
_URL = re.compile(r"^(?:https?://)?[^\s/$.?#][^\s]*\.[^\s]{2,}$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_RANGE = re.compile(r"^\s*([0-9][0-9,._ ]*)\s*(?:[-\u2013+].*)?$")


def is_valid_email(text: str) -> bool:
    """An RFC 5321/5322 addr-spec (dot-atom or quoted local part; a domain with a TLD, or a
    literal), with the length limits of RFC 5321; UTF-8 allowed as RFC 6531 does."""
    if len(text) > 254 or "@" not in text:
        return False
    local, _, domain = text.rpartition("@")
    if not local or len(local.encode()) > 64 or not domain:
        return False
    return bool(_EMAIL_LOCAL.fullmatch(local) and _EMAIL_DOMAIN.fullmatch(domain))


def check_value(spec: FieldSpec, value: Any) -> Problem | None:
    """The first way ``value`` breaks ``spec``, or ``None``."""
    kind = spec.type
    if kind in ("string", "email", "phone", "url", "choice"):
        if not isinstance(value, str):
            return Problem(spec.name, "type", f"must be text, got {type(value).__name__}")
        if _CONTROL.search(value):
            return Problem(spec.name, "control_characters", "contains control characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            return Problem(
                spec.name,
                "max_length",
                f"is {len(value)} characters long; at most {spec.max_length}",
            )
        if kind == "email" and not is_valid_email(normalize_email(value)):
            return Problem(
                spec.name, "email_format", f"{clip(value)!r} is not a valid email address"
            )
        if kind == "phone" and not _PHONE.match(value.strip()):
            return Problem(spec.name, "phone_format", f"{clip(value)!r} is not a phone number")
        if kind == "url" and not _URL.match(value.strip()):
            return Problem(spec.name, "url_format", f"{clip(value)!r} is not a web address")
        if kind == "choice" and value not in spec.choices:
            return Problem(
                spec.name, "choice", f"{clip(value)!r} is not one of {listing(spec.choices)}"
            )
        return None
    if kind in ("integer", "number"):
        wanted = int if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            return Problem(spec.name, "type", f"must be {_a(kind)}, got {clip(repr(value))}")
        if spec.min is not None and value < spec.min:
            return Problem(spec.name, "min", f"is {value}; at least {spec.min:g}")
        if spec.max is not None and value > spec.max:
            return Problem(spec.name, "max", f"is {value}; at most {spec.max:g}")
        return None
    if kind == "boolean" and not isinstance(value, bool):
        return Problem(spec.name, "type", f"must be true or false, got {clip(repr(value))}")
    if kind == "datetime" and not isinstance(value, datetime):
        return Problem(spec.name, "type", f"must be a date and time, got {clip(repr(value))}")
    return None


def coerce(spec: FieldSpec, raw: Any) -> tuple[Any, Problem | None]:
    """A native value converted to the shared field's type (``"100-500"`` employees → 100)."""
    kind = spec.type
    try:
        if kind == "integer":
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, int):
                return raw, None
            if isinstance(raw, float):
                if not raw.is_integer():
                    raise ValueError
                return int(raw), None
            match = _RANGE.match(str(raw))
            if match is None:
                raise ValueError
            return int(float(re.sub(r"[,_ ]", "", match.group(1)))), None
        if kind == "number":
            if isinstance(raw, bool):
                raise ValueError
            return (raw if isinstance(raw, int | float) else float(str(raw).replace(",", ""))), None
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw, None
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return True, None
            if text in ("false", "0", "no"):
                return False, None
            raise ValueError
        if kind == "datetime":
            if isinstance(raw, datetime):
                return raw, None
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00")), None
    except (ValueError, OverflowError):
        return None, Problem(spec.name, "type", f"{clip(repr(raw))} cannot be read as {_a(kind)}")
    return (raw if isinstance(raw, str) else str(raw)), None


def _a(kind: str) -> str:
    """``"an integer"``, ``"a number"``: the type name with its article, for messages."""
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"
