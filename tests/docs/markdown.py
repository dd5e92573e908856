"""Code blocks of the Markdown docs, with the marker that may precede each one.

A block right after ``<!-- file: PATH -->`` shows a committed file and must be exactly that file;
the other ``python`` blocks of a page are run, in order, in one namespace (like a doctest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"(?:<!-- file: (?P<file>\S+) -->\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its text, the file it shows, and its line."""

    lang: str
    code: str
    file: str | None
    line: int


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(m["lang"], m["code"], m["file"], text.count("\n", 0, m.start("code")) + 1)
        for m in BLOCK.finditer(text)
    ]
