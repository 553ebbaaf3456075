"""dvc.yaml lists, for every stage, each file of ``src/`` that its script imports, directly or through another
module: otherwise a code change leaves stale outputs that ``dvc status`` reports as up to date."""
import re

import pytest
import yaml

from conftest import ROOT
from dvc_deps import generate, import_closure

SRC = ROOT / "src"


def transitive_imports(script):
    return set(import_closure(script))


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


def test_dvc_yaml_is_what_the_generator_writes():
    # python src/dvc_deps.py rewrites the src/ deps from the import closure; the committed dvc.yaml is its output
    text = (ROOT / "dvc.yaml").read_text()
    assert generate(text) == text


def test_the_generator_replaces_stale_code_deps_and_keeps_the_rest():
    text = (ROOT / "dvc.yaml").read_text()
    stale = text.replace("      - src/erc/models/mrl.py\n", "      - src/erc/old_module.py\n", 1)
    assert stale != text and generate(stale) == text


def test_the_import_walk_sees_indirect_imports():
    # train.py imports erc.training.train, which imports erc.models.mglra, which imports erc.models.mrl: all three must be found
    found = transitive_imports(SRC / "train.py")
    assert {"src/erc/training/train.py", "src/erc/models/mglra.py", "src/erc/models/mrl.py", "src/erc/runtime/files.py"} <= found


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
    # (erc.training.train) reruns train alone
    deps = {name: set(spec.get("do", spec)["deps"]) for name, spec in STAGES.items()}
    assert "src/erc/training/references.py" not in deps["train"] | deps["train_teachers"]
    assert "src/erc/training/train.py" not in deps["train_references"] | deps["train_teachers"]
    assert "src/erc/training/teachers.py" not in deps["train_references"]
