"""``python -m crmbridge.cli``: the same as the ``crmbridge`` command."""

from __future__ import annotations

from crmbridge.cli import main

main()
