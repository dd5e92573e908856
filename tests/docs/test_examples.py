"""Every code example of the docs works: a block that shows a committed file is that file, and
every other Python block runs (the blocks of a page in order, in one namespace); a block that
defines hooks loads as a plugin."""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import pytest

from crmbridge.plugins import make_plugin_manager
from tests.docs.markdown import REPO, Block, blocks

EXAMPLE_PLUGINS = ("crmbridge-csv", "crmbridge-routing", "crmbridge-webhook")
PAGES = [
    *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "hooks.md"),
    *(REPO / "plugins" / name / "README.md" for name in EXAMPLE_PLUGINS),
    REPO / "docs" / "tutorial" / "crmbridge-target-accounts" / "README.md",
]
"""Every page of docs/ (hooks.md has its own test) and the example plugins' READMEs."""
IDS = [str(p.relative_to(REPO)) for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_blocks_that_show_a_file_are_that_file(page: Path) -> None:
    shown = [b for b in blocks(page) if b.file]
    for block in shown:
        committed = REPO / block.file  # type: ignore[operator]
        assert committed.is_file(), f"{page.name}:{block.line}: {block.file} does not exist"
        assert block.code == committed.read_text(encoding="utf-8"), (
            f"{page.name}:{block.line} differs from {block.file}; copy the file into the page"
        )


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_python_blocks_run_and_hooks_load(page: Path) -> None:
    runnable = [b for b in blocks(page) if b.lang == "python" and not b.file]
    namespace = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    for block in runnable:
        run(page, block, namespace)
    for name, value in sorted(vars(namespace).items()):
        if name.startswith("test_") and callable(value) and not inspect.signature(value).parameters:
            value()  # an example written as a test is run as one


def run(page: Path, block: Block, namespace: types.ModuleType) -> None:
    code = compile(block.code, f"{page.relative_to(REPO)}:{block.line}", "exec")
    exec(code, namespace.__dict__)
    if "@hookimpl" in block.code:
        plugin = types.ModuleType(f"{namespace.__name__}_{block.line}")
        exec(code, plugin.__dict__)
        pm = make_plugin_manager(entrypoints=False, extra=[("docs-example", plugin)])
        assert pm.get_plugin("docs-example") is plugin


def test_the_pages_of_this_issue_are_checked() -> None:
    names = {str(p.relative_to(REPO)) for p in PAGES}
    for page in ("writing-a-plugin", "writing-a-connector", "testing-a-plugin", "operations",
                 "lifecycle"):  # fmt: skip
        assert f"docs/{page}.md" in names


def test_the_webhook_readme_verifies_a_real_signature() -> None:
    from crmbridge_webhook import signature

    namespace: dict[str, object] = {}
    page = REPO / "plugins" / "crmbridge-webhook" / "README.md"
    [block] = [b for b in blocks(page) if b.lang == "python"]
    exec(compile(block.code, str(page), "exec"), namespace)
    verify = namespace["verify"]
    assert callable(verify)
    body = b'{"event": "sla_breached"}'
    assert verify("s3cret", body, signature("s3cret", body)) is True
    assert verify("other", body, signature("s3cret", body)) is False
