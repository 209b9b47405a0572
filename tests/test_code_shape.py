"""Rules of the code's shape (issue #14): short functions, dependencies that point down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 50


def functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_function_in_src_is_longer_than_50_lines(path):
    long = [(name, n) for name, n in functions(path) if n > MAX_LINES]
    assert not long, f"{path}: {long}"


def test_the_rule_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n")
    assert functions(tmp_path / "long.py") == [("f", MAX_LINES + 1)]


def test_the_core_library_does_not_import_the_sweeper_plugin():
    code = "import sys, signdistill.pipeline; print(any('hydra_plugins' in m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
