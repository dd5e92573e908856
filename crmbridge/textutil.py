"""Small text helpers for messages: clipping long values, listing names, quoting TOML keys."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any


def show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return clip(str(value))


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listing(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)


def toml_key(key: str) -> str:
    """A TOML key as written in a table header: quoted when it is not a bare key."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)
