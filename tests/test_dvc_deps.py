"""dvc.yaml lists, for every stage, each file of ``src/`` that its script imports, directly or through another
module: otherwise a code change leaves stale outputs that ``dvc status`` reports as up to date."""
import ast
import re

import pytest
import yaml

from conftest import ROOT

SRC = ROOT / "src"


def local_imports(path):
    """``src/erc/*.py`` files imported by the module at ``path`` (``erc.x`` and ``from erc import x`` alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            candidate = SRC / (name.replace(".", "/") + ".py")
            if name.split(".")[0] == "erc" and candidate.is_file():
                found.add(candidate)
    return found


def transitive_imports(script):
    seen, todo = set(), [script]
    while todo:
        for module in local_imports(todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return {str(p.relative_to(ROOT)) for p in seen | {script}}


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_modules_its_script_imports(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    script = spec["cmd"].split()[1]
    assert script.startswith("src/") and (ROOT / script).is_file(), spec["cmd"]
    imported = transitive_imports(ROOT / script)
    missing = sorted(imported - set(spec["deps"]))
    assert not missing, f"dvc.yaml stage {stage} is missing deps {missing}"
    extra = sorted({d for d in spec["deps"] if d.startswith("src/")} - imported)
    assert not extra, f"dvc.yaml stage {stage} lists {extra}, which its script never imports (needless reruns)"


def test_the_import_walk_sees_indirect_imports():
    # train.py imports erc.multimodal, which imports erc.model, which imports erc.mrl: all three must be found
    found = transitive_imports(SRC / "train.py")
    assert {"src/erc/multimodal.py", "src/erc/model.py", "src/erc/mrl.py", "src/erc/io.py"} <= found


def files_read(script):
    """``data/...`` and ``models/...`` paths named in a stage script, with ``{dataset}`` as DVC's ``${item}``."""
    return {path.replace("{dataset}", "${item}").replace("{check_dataset(dataset)}", "${item}")
            for path in re.findall(r'f?"((?:data|models)/[^"]+)"', script.read_text())}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_file_its_script_reads(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    script = ROOT / spec["cmd"].split()[1]
    declared = set(spec["deps"]) | {next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", [])} | \
        {next(iter(m)) for m in spec.get("metrics", [])}
    read = files_read(script)
    if "foreach" not in STAGES[stage]:  # one stage for every dataset: each dataset's path, written out
        read = {path.replace("${item}", dataset) for path in read for dataset in ("iemocap", "meld")}
    # a path inside a declared folder is covered by it (models/finetuned/<dataset> of the models/finetuned out)
    missing = sorted(r for r in read if not any(r == d or r.startswith(d.rstrip("/") + "/") for d in declared))
    assert not missing, f"dvc.yaml stage {stage} reads {missing} without listing them"


def test_the_bc_lstm_and_the_model_are_separate_rooms():
    # editing the reference reruns train_references alone, editing the model's training loop of MGLRA's seeds
    # (erc.multimodal) reruns train alone
    deps = {name: set(spec.get("do", spec)["deps"]) for name, spec in STAGES.items()}
    assert "src/erc/references.py" not in deps["train"] | deps["train_teachers"]
    assert "src/erc/multimodal.py" not in deps["train_references"] | deps["train_teachers"]
    assert "src/erc/teachers.py" not in deps["train_references"]
