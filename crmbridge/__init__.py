"""crmbridge: keeps marketing and sales working from one definition of a lead."""

from __future__ import annotations

__version__ = "0.1.0"
