#!/usr/bin/env bash
# One fine-tuned-text recipe on validation only, in a throwaway git worktree (the checkout is left alone):
#   benchmarks/finetune_recipe.sh NAME DATASET "key=value ..." [OUT.jsonl]
# e.g. benchmarks/finetune_recipe.sh iemocap_f3 iemocap "features.text=minilm-ft finetune.folds=3 finetune.eval_from=full"
# Overrides params.yaml in /tmp/erc-recipes/NAME, runs finetune_text, extract_features and build_graphs there,
# then benchmarks/probe.py (MGLRA + MRL + MKD at the other params, seeds 0 1 2, standard validation split).
# One core (OMP_NUM_THREADS=1): run two at a time on a 2-core machine. Results: docs/experiments.md, "Fine-tuned
# text"; rows in docs/evidence/finetune_recipes.jsonl.
set -euo pipefail
name=$1; dataset=$2; overrides=$3; out=${4:-$PWD/docs/evidence/finetune_recipes.jsonl}
root=$(git rev-parse --show-toplevel); dir=/tmp/erc-recipes/$name
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
[ -d "$dir" ] || git -C "$root" worktree add --detach "$dir" HEAD
cd "$dir"
export PYTHONPATH=$dir/src  # probe.py imports the worktree's erc, as its stage scripts do, not the installed one
python - "$overrides" <<'PY'
import sys, yaml
params = yaml.safe_load(open("params.yaml"))
for assignment in sys.argv[1].split():
    key, _, value = assignment.partition("=")
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
/usr/bin/time -f "finetune_text %e s" python src/finetune_text.py "$dataset"
/usr/bin/time -f "extract_features %e s" python src/extract_features.py "$dataset"
python src/build_graphs.py "$dataset"
python benchmarks/probe.py "$dataset" --seeds 0 1 2 --run "$overrides" --out "$out" --teacher-cache "/tmp/erc-recipes/teachers-$name"
