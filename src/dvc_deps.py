"""dvc.yaml's code deps, generated: each stage lists exactly the files of ``src/`` its script imports, directly or
through another module, so that a code change reruns the stages it can change and no other.

    python src/dvc_deps.py           # rewrite the src/ lines of each stage's deps in dvc.yaml
    python src/dvc_deps.py --check   # exit 1, naming the first stage whose deps differ (tests/test_dvc_deps.py)

Only the ``- src/...`` lines of a stage's ``deps`` are rewritten; data deps, params, outs and comments stay as they
are. Package ``__init__.py`` files are left out: they hold a docstring and nothing else (tests/test_layout.py)."""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """``erc.data.graphs`` -> src/erc/data/graphs.py, if that file exists (packages and outside modules: None)."""
    candidate = SRC / (name.replace(".", "/") + ".py")
    return candidate if name.split(".")[0] == "erc" and candidate.is_file() else None


def local_imports(path: Path) -> set[Path]:
    """``src/erc/**.py`` files that the module at ``path`` imports (``import erc.x.y``, ``from erc.x import y``,
    ``from erc.x.y import z``, at any depth of the file: lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {f for f in map(module_file, names) if f is not None}
    return found


def import_closure(script: Path) -> list[str]:
    """The script, then every ``src/erc`` file it imports, transitively, sorted; paths relative to the root."""
    seen, todo = set(), [script]
    while todo:
        for module in local_imports(todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return [str(script.relative_to(ROOT))] + sorted(str(p.relative_to(ROOT)) for p in seen - {script})


def stage_scripts(dvc_yaml: str) -> dict[str, str]:
    """stage name -> the script its command runs (``python src/<script>.py ...``)."""
    stages = yaml.safe_load(dvc_yaml)["stages"]
    return {name: spec.get("do", spec)["cmd"].split()[1] for name, spec in stages.items()}


def generate(dvc_yaml: str) -> str:
    """dvc.yaml with each stage's ``- src/...`` dep lines replaced by its script's import closure."""
    scripts = stage_scripts(dvc_yaml)
    out, stage, in_deps = [], None, False
    for line in dvc_yaml.splitlines():
        top = re.match(r"^  (\w+):", line)
        if top:
            stage, in_deps = top.group(1), False
        key = re.match(r"^(\s+)(\w+):", line)
        if key and stage is not None:
            in_deps = key.group(2) == "deps"
            if in_deps:
                out.append(line)
                indent = key.group(1) + "  "
                out += [f"{indent}- {path}" for path in import_closure(ROOT / scripts[stage])]
                continue
        if in_deps and re.match(r"^\s+- src/", line):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare, write nothing; exit 1 if they differ")
    args = parser.parse_args()
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    wanted = generate(text)
    if args.check:
        if wanted != text:
            now, then = stage_scripts(text), yaml.safe_load(wanted)["stages"]
            current = yaml.safe_load(text)["stages"]
            stage = next(s for s in now if current[s] != then[s])
            sys.exit(f"error: dvc.yaml: stage {stage}'s code deps are not its script's imports "
                     f"(run python src/dvc_deps.py)")
        return
    if wanted != text:
        path.write_text(wanted)
        print("dvc.yaml: code deps rewritten")
    else:
        print("dvc.yaml: code deps already match")


if __name__ == "__main__":
    main()
