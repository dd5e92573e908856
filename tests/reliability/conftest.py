"""The reliability tests reuse the end-to-end ``loop`` (both sandboxes, the real SDKs, a runner on
a store in ``tmp_path``, a clock shared with the emulators)."""

from __future__ import annotations

from tests.e2e.conftest import loop

__all__ = ["loop"]
