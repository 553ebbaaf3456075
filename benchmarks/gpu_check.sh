#!/usr/bin/env bash
# GPU check (under 8 minutes on one GPU): install, run the CUDA tests, then `dvc repro` of IEMOCAP with 2 seeds on a
# throwaway copy of the repository, printing each stage's wall time and the peak GPU memory.
#   bash benchmarks/gpu_check.sh            (from the repository root, on a machine with a CUDA GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== CUDA tests"
python -m pytest -q tests/test_device.py

echo "== dvc repro, IEMOCAP, seeds 0 1, device: cuda"
work=$(mktemp -d)
git ls-files -z | xargs -0 -I{} cp --parents {} "$work"
cd "$work"
rm -f dvc.lock && rm -rf metrics plots
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p.update(datasets=["iemocap"], device="cuda")
p["train"]["seeds"] = [0, 1]
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
git init -q && git add -A && git -c user.name=gpu -c user.email=gpu@check commit -qm gpu-check
# peak GPU memory of the whole run, sampled every 0.5 s
( peak=0; while sleep 0.5; do m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1);
  [ "$m" -gt "$peak" ] && peak=$m && echo "$peak" > gpu_peak_mib; done ) &
sampler=$!
for stage in finetune_text extract_features@iemocap build_graphs@iemocap train_teachers@iemocap \
             train_references@iemocap train@iemocap evaluate@iemocap; do
  start=$(date +%s)
  dvc repro -s -q "$stage" > "log_${stage//@/_}.txt" 2>&1 || { tail -20 "log_${stage//@/_}.txt"; exit 1; }
  printf '%-28s %5d s\n' "$stage" "$(( $(date +%s) - start ))"
done
kill $sampler
echo "peak GPU memory: $(cat gpu_peak_mib 2>/dev/null || echo '?') MiB (nvidia-smi, whole device)"
python -c "import json; m = json.load(open('metrics/details/iemocap.json')); print('device', m['setup']['device']); print('test w-F1 %.2f ± %.2f' % (m['test']['weighted_f1']['mean'], m['test']['weighted_f1']['std']))"
