"""Every hook has a test: each hook name of crmbridge/hookspecs.py appears in a test file under
tests/ (one that implements or calls it), other than these meta-tests."""

from __future__ import annotations

from pathlib import Path

from crmbridge import hookspecs
from tests.core.conftest import REPO

META_TESTS = {"test_docs.py", "test_hooks_tested.py"}


def files_of_tests() -> list[Path]:
    """Every test module under tests/, the meta-tests left out."""
    return sorted(
        path for path in (REPO / "tests").rglob("test_*.py") if path.name not in META_TESTS
    )


def test_every_hook_is_used_by_a_test() -> None:
    hooks = [name for name in vars(hookspecs) if name.startswith("crm_")]
    assert hooks, "no hooks found in crmbridge/hookspecs.py"
    sources = [path.read_text(encoding="utf-8") for path in files_of_tests()]
    untested = [hook for hook in hooks if not any(hook in source for source in sources)]
    assert untested == [], (
        f"hooks no test under tests/ implements or calls: {', '.join(untested)}; add a test "
        "that does (the meta-tests do not count)"
    )
