"""The house as docs/layout.md describes it: the packages of ``src/erc`` in their layer order, each importing only
from itself and the packages listed before it (no cycle, nothing running back up), and every module named in its
package's row, so the page a newcomer reads cannot drift from the code."""
import ast
import re

from conftest import ROOT

LIB = ROOT / "src" / "erc"


def layout_rows() -> dict:
    """package -> the modules docs/layout.md's package table names for it, in the table's (layer) order."""
    rows = {}
    for line in (ROOT / "docs" / "layout.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]) and (LIB / cells[0].strip("`")).is_dir():
            rows[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[2]))
    return rows


def erc_imports(path) -> set:
    """The ``erc`` packages a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "erc" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_and_module_is_on_the_layout_page():
    rows = layout_rows()
    packages = {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert set(rows) == packages
    for package, modules in rows.items():
        files = {f.stem for f in (LIB / package).glob("*.py") if f.stem != "__init__"}
        assert files == modules, f"docs/layout.md's {package} row: {sorted(modules ^ files)}"


def test_a_package_imports_only_the_packages_before_it():
    order = list(layout_rows())
    for package in order:
        allowed = set(order[:order.index(package) + 1])
        for path in sorted((LIB / package).glob("*.py")):
            above = erc_imports(path) - allowed
            assert not above, f"src/erc/{package}/{path.name} imports erc.{sorted(above)[0]}, listed after {package}"
    assert not any(p.parent == LIB and p.stem != "__init__" for p in LIB.glob("*.py")), "a module outside the packages"
