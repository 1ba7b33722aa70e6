"""The apps keep to their layers (webapp.LAYERS), read from the source: every import counts.

Imports inside functions and under TYPE_CHECKING count like those at the top of a module: they
hide a dependency from a reader, not from the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import webapp

WEBAPP_DIR = Path(webapp.__file__).parent
PROJECT_PACKAGES = ("webapp", "inference", "training", "benchmarks", "tests")


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the module imported, absolute

    def __str__(self) -> str:
        return f"{self.path.relative_to(WEBAPP_DIR.parent)}:{self.line} imports {self.module}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in a file, wherever it stands; `from a import b` names a.b if b is a module."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                is_module = (root / submodule.replace(".", "/")).with_suffix(".py").is_file() or (
                    root / submodule.replace(".", "/") / "__init__.py"
                ).is_file()
                yield Import(path, node.lineno, submodule if is_module else base)


def app_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "webapp" and parts[1] in webapp.LAYERS:
        return parts[1]
    return None


def webapp_imports() -> list[tuple[str, Import]]:
    """(importing app, import) for every import in every app's files."""
    found: list[tuple[str, Import]] = []
    for path in sorted(WEBAPP_DIR.rglob("*.py")):
        app = app_of(module_name(path, WEBAPP_DIR.parent))
        if app is not None:
            found.extend((app, imported) for imported in imports_of(path, WEBAPP_DIR.parent))
    return found


def test_every_app_is_in_a_layer():
    packages = {path.parent.name for path in WEBAPP_DIR.glob("*/__init__.py")}
    assert packages - {"config"} == set(webapp.LAYERS)


def test_each_app_imports_only_the_apps_below_it():
    upward = [
        f"{imported} ({app} is below {target})"
        for app, imported in webapp_imports()
        if (target := app_of(imported.module)) is not None
        and webapp.LAYERS.index(target) > webapp.LAYERS.index(app)
    ]
    assert upward == []


def test_no_apps_import_each_other_round_a_cycle():
    graph: dict[str, set[str]] = {app: set() for app in webapp.LAYERS}
    for app, imported in webapp_imports():
        target = app_of(imported.module)
        if target is not None and target != app:
            graph[app].add(target)

    def cycle_from(app: str, path: list[str]) -> list[str] | None:
        if app in path:
            return [*path[path.index(app) :], app]
        for target in sorted(graph[app]):
            found = cycle_from(target, [*path, app])
            if found:
                return found
        return None

    cycles = [cycle for app in webapp.LAYERS if (cycle := cycle_from(app, []))]
    assert cycles == []


def test_no_app_imports_another_apps_views():
    into_views = [
        str(imported)
        for app, imported in webapp_imports()
        if app_of(imported.module) not in (None, app)
        and imported.module.split(".")[2:3] == ["views"]
    ]
    assert into_views == []


def test_lib_imports_nothing_of_the_project():
    project = [
        str(imported)
        for app, imported in webapp_imports()
        if app == "lib"
        and imported.module.split(".")[0] in PROJECT_PACKAGES
        and app_of(imported.module) != "lib"
    ]
    assert project == []


def test_the_reader_sees_imports_in_functions_relative_ones_and_submodules(tmp_path):
    package = tmp_path / "webapp" / "reviews"
    package.mkdir(parents=True)
    (tmp_path / "webapp" / "cases").mkdir()
    (tmp_path / "webapp" / "cases" / "views.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "services.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import models\n"
        "from webapp.cases import views\n"
        "if TYPE_CHECKING:\n"
        "    import webapp.audit.models\n"
        "def f():\n"
        "    from ..scoring.services import prediction_create\n"
    )
    found = {imported.module for imported in imports_of(package / "services.py", tmp_path)}
    assert {
        "webapp.reviews",  # `models` is no file here, so the package stands for it
        "webapp.cases.views",
        "webapp.audit.models",
        "webapp.scoring.services",
    } <= found
