"""The package layout: no module imports itself back, the import-linter contracts of
pyproject.toml (layers, acyclic siblings) hold, modules stay small and the README short."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
importlinter_cli = pytest.importorskip("importlinter.cli")

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph("infomtl")
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.append(" -> ".join((module, *chain)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_import_contracts_hold() -> None:
    # in a subprocess: import-linter configures logging (disabling the loggers that exist)
    code = "import sys, importlinter.cli as c; sys.exit(c.lint_imports(config_filename='pyproject.toml'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


#: The layout's module size (about 400 lines) with a margin: a module past it is split.
MODULE_LINES = 450


def test_no_module_is_over_the_size_of_the_layout() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in (ROOT / "src" / "infomtl").rglob("*.py")}
    over = {path: n for path, n in sizes.items() if n > MODULE_LINES}
    assert not over, over


def test_the_readme_is_short_and_the_rest_lives_under_docs() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
