"""Target Accounts: a crmbridge plugin (see plugin.py), the finished code of
crmbridge's docs/writing-a-plugin.md."""

from __future__ import annotations

__version__ = "0.1.0"
