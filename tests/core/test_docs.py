"""docs/hooks.md agrees with crmbridge/hookspecs.py: every hook is documented with its exact
signature, in lifecycle order, with its calling style, and every example there is a plugin that
loads."""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from crmbridge import hookspecs
from crmbridge.plugins import connector_classes, make_plugin_manager, sandbox_classes
from tests.core.conftest import REPO

DOCS = REPO / "docs" / "hooks.md"
HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
STYLE = re.compile(r"^\*\*Calling style:\*\* (\S+)$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
STYLES = ("collect-all", "firstresult", "notify", "registration")


def spec_functions() -> list[Callable[..., Any]]:
    """The hook specifications, in the order hookspecs.py defines them."""
    return [f for name, f in vars(hookspecs).items() if name.startswith("crm_") and callable(f)]


def signature(spec: Callable[..., Any]) -> str:
    """``crm_hook_name(arg1, arg2)``, as the spec function declares it."""
    return f"{spec.__name__}({', '.join(inspect.signature(spec).parameters)})"


def doc_text() -> str:
    """The hooks reference."""
    return DOCS.read_text(encoding="utf-8")


def sections() -> dict[str, str]:
    """Each ``## `` heading of the docs → the text under it, up to the next heading."""
    text = doc_text()
    found = list(HEADING.finditer(text))
    return {
        m.group(1): text[m.end() : found[i + 1].start() if i + 1 < len(found) else len(text)]
        for i, m in enumerate(found)
    }


def section_of(spec: Callable[..., Any]) -> str:
    """The docs section of a hook (the test fails if it has none)."""
    body = sections().get(signature(spec))
    assert body is not None, f"docs/hooks.md has no section `## {signature(spec)}`"
    return body


def firstresult(name: str) -> bool:
    """Whether the spec of hook ``name`` is firstresult, as pluggy reads it."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    spec = getattr(pm.hook, name).spec
    assert spec is not None
    return bool(spec.opts["firstresult"])


SPECS = spec_functions()
IDS = [spec.__name__ for spec in SPECS]


def test_every_hook_has_a_heading_with_its_exact_signature() -> None:
    headings = [h for h in sections() if h.startswith("crm_")]
    missing = [signature(s) for s in SPECS if signature(s) not in headings]
    assert missing == [], f"docs/hooks.md lacks sections for: {', '.join(missing)}"


def test_no_heading_names_a_hook_that_does_not_exist() -> None:
    known = {signature(s) for s in SPECS}
    headings = [h for h in sections() if h.startswith("crm_") or "(" in h]
    unknown = [h for h in headings if h not in known]
    assert unknown == [], f"docs/hooks.md documents hooks that do not exist: {unknown}"


def test_hooks_are_documented_in_spec_order() -> None:
    headings = [h for h in sections() if h.startswith("crm_")]
    assert headings == [signature(s) for s in SPECS]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_calling_style_matches_the_spec(spec: Callable[..., Any]) -> None:
    styles = STYLE.findall(section_of(spec))
    assert len(styles) == 1, f"{spec.__name__}: one **Calling style:** line, found {styles}"
    [style] = styles
    assert style in STYLES
    assert (style == "firstresult") == firstresult(spec.__name__)
    assert (style == "registration") == spec.__name__.startswith("crm_register_")
    returns_nothing = inspect.signature(spec).return_annotation in (None, "None")
    assert (style in ("notify", "registration")) == returns_nothing


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_argument_and_the_return_are_documented(spec: Callable[..., Any]) -> None:
    body = section_of(spec)
    for name in inspect.signature(spec).parameters:
        assert f"- `{name}` — " in body, f"{spec.__name__}: argument `{name}` is not documented"
    assert "**When it fires:**" in body
    assert "**Returns:**" in body


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_each_example_is_a_plugin_that_loads(spec: Callable[..., Any]) -> None:
    blocks = PYTHON_BLOCK.findall(section_of(spec))
    assert blocks, f"{spec.__name__}: no example"
    module = types.ModuleType(f"docs_example_{spec.__name__}")
    exec(compile(blocks[-1], f"docs/hooks.md ({spec.__name__})", "exec"), module.__dict__)
    assert callable(getattr(module, spec.__name__, None))
    pm = make_plugin_manager(entrypoints=False, extra=[("docs-example", module)])
    impls = getattr(pm.hook, spec.__name__).get_hookimpls()
    assert "docs-example" in [impl.plugin_name for impl in impls]
    if spec.__name__ == "crm_register_connectors":
        assert list(connector_classes(pm)) == ["marketo"]
    if spec.__name__ == "crm_register_sandboxes":
        assert list(sandbox_classes(pm)) == ["marketo"]


def test_the_introduction_example_loads() -> None:
    intro = doc_text().split("\n## ", 1)[0]
    [block] = PYTHON_BLOCK.findall(intro)
    module = types.ModuleType("docs_example_intro")
    exec(compile(block, "docs/hooks.md (introduction)", "exec"), module.__dict__)
    pm = make_plugin_manager(entrypoints=False, extra=[("docs-intro", module)])
    assert pm.hook.crm_lead_captured.get_hookimpls()[0].plugin_name == "docs-intro"
