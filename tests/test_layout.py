"""The package's layout: no import cycle, the science apart from the speed work, small modules,
and nothing that points outside the repository."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mfbook"
#: chapters 1-3, 5-6 and 9: no fast path
SCIENCE = ("spike_slab", "moments", "gbp", "analysis", "rnn", "msi")
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The mfbook modules that ``path`` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] == "mfbook"}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path) & set(modules) - {name} for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_inside_the_package():
    edges = graph()
    assert "mfbook.train" in edges and "mfbook.fast.graphs" in edges
    assert find_cycle(edges) is None


@pytest.mark.parametrize("name", SCIENCE)
def test_the_science_modules_import_nothing_of_the_fast_path(name):
    fast = {m for m in imports(PACKAGE / f"{name}.py") if m.startswith("mfbook.fast")}
    assert not fast, f"mfbook.{name} imports {sorted(fast)}"


def test_the_fast_path_is_chosen_in_one_place_of_the_model():
    source = (PACKAGE / "nn.py").read_text()
    assert source.count("kernels.applies(") == 1  # in nn._path


def test_modules_are_small():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    suffixes = (".py", ".ipynb", ".md", ".toml", ".cpp", ".yml", ".cfg", ".txt")
    return [ROOT / n for n in names if n.endswith(suffixes) and (ROOT / n).exists()]


def test_every_markdown_file_named_in_the_repository_is_in_it():
    """Docstrings, comments and chapters point into the book, never to notes kept elsewhere:
    every Markdown file that a tracked file mentions by name is a tracked file."""
    files = tracked_text_files()
    present = {p.name for p in files}
    mentioned = {
        (str(p.relative_to(ROOT)), name.rsplit("/", 1)[-1].lstrip("."))
        for p in files
        for name in re.findall(r"[A-Za-z0-9_./-]+\.md\b", p.read_text(errors="replace"))
    }
    assert any(name == "README.md" for _, name in mentioned)  # the scan finds the names
    missing = sorted((where, name) for where, name in mentioned if name not in present)
    assert not missing, f"files that name a .md file outside the repository: {missing}"
