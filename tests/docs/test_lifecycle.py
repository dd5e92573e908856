"""docs/lifecycle.md shows every hook of crmbridge/hookspecs.py, with its calling style."""

from __future__ import annotations

import re

import pluggy

from crmbridge import hookspecs
from tests.docs.markdown import REPO, blocks


def diagram() -> str:
    [flow, *_] = [b.code for b in blocks(REPO / "docs" / "lifecycle.md") if b.lang == "mermaid"]
    return flow


def test_every_hook_is_in_the_diagram_with_its_style() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    flow = diagram()
    for name in (n for n in vars(hookspecs) if n.startswith("crm_")):
        spec = getattr(pm.hook, name).spec
        returns = spec.function.__annotations__.get("return")
        if name.startswith("crm_register_"):
            style = "registration"
        elif spec.opts["firstresult"]:
            style = "first"
        elif returns in (None, "None"):
            style = "notify"
        else:
            style = "all"
        assert f'{{{{"{name} · {style}"}}}}' in flow, f"{name} ({style}) is not in the diagram"


def test_the_diagram_names_no_hook_that_does_not_exist() -> None:
    named = set(re.findall(r"crm_[a-z_]+", diagram()))
    assert named == {n for n in vars(hookspecs) if n.startswith("crm_")}
