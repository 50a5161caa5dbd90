"""Imports point one way: memoryrelay_site ← sessions_app ← memories_app ← entities_app ←
knowledge_app.
A lower package never imports a higher one (it reaches higher models only through reverse
relations, and the root urls include each app's urls by name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

LAYERS = ["memoryrelay_site", "sessions_app", "memories_app", "entities_app",
          "knowledge_app"]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_package_imports_a_package_above_it(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    root = Path(settings.BASE_DIR) / layer
    offenders = {str(path.relative_to(root.parent)): sorted(imported_packages(path) & above)
                 for path in root.rglob("*.py")}
    assert {path: names for path, names in offenders.items() if names} == {}
