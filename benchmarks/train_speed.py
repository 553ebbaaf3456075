"""Seconds per training epoch and per evaluation pass, peak memory, and the training stages' time, at the default
params; with ``--compare REV``, the same figures for REV's code and this tree's, on this machine, in one run.

    python benchmarks/train_speed.py                      # IEMOCAP and MELD on the pipeline's features
    python benchmarks/train_speed.py --compare f131d90    # before (REV's src/, a git worktree) and after, in turns
                                                          # (--rounds, default 3), each round's ratios and the median
    python benchmarks/train_speed.py --stage              # also stage train's work: all seeds, the stage's
                                                          # workers, the committed epochs (minutes)
    python benchmarks/train_speed.py --profile            # and the top operators of one epoch under the profiler
    python benchmarks/train_speed.py --released-dims      # IEMOCAP dialogue structure, random inputs of the
                                                          # released dims (text 4x1024, audio 1582, visual 342)
Reads data/features, data/graphs and models/teachers of this tree (``dvc repro`` first). Runs on CUDA as well when
it is available. Not a test: it prints figures (docs/speed.md has the measured ones).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code():
    """The erc functions this script times, from whichever code is on the path: the package layout (session 23 on)
    or the flat one of f131d90, the code before issue 44's speed work, so that ``--compare f131d90`` times both with
    one script. Each difference of interface is bridged here, none of them in a timed loop."""
    from types import SimpleNamespace
    try:
        import erc.data.batching as batching
        import erc.data.feature_file as feature_file
        import erc.data.graphs as graphs
        import erc.runtime.files as files
        import erc.models.mglra as mglra
        import erc.training.loop as loop
        import erc.models.predict as predict
        import erc.training.train as train
        import erc.config.params as params
        import erc.training.teachers as teachers
        bridges = dict(make_model=mglra.MGLRA, nesting=lambda c: c.nesting, get=getattr,
                       with_features=lambda f, x: f.but(features=x))
    except ImportError:  # the flat layout: dict feature files and configs, MGLRA(**config)
        import erc.batching as batching
        import erc.features as feature_file
        import erc.graphs as graphs
        import erc.io as files
        import erc.model as mglra
        import erc.training as loop
        import erc.training as predict
        import erc.multimodal as train
        import erc.params as params
        import erc.teachers as teachers
        bridges = dict(make_model=lambda c: mglra.MGLRA(**c), nesting=lambda c: c["nesting"], get=lambda f, k: f[k],
                       with_features=lambda f, x: {**f, "features": x})
    return SimpleNamespace(
        DialogueData=batching.DialogueData, load_features=feature_file.load_features,
        build_graphs=graphs.build_graphs, load_torch=files.load_torch, build_objective=loop.build_objective,
        model_config=loop.model_config, predict=predict.predict, train_model=train.train_model,
        load_params=params.load_params, validate_params=params.validate_params,
        load_teacher_logits=teachers.load_teacher_logits, **bridges)


def released_dims(feats):
    import torch
    erc = code()
    n = len(erc.get(feats, "labels"))
    g = torch.Generator().manual_seed(0)
    return erc.with_features(feats, {"text": torch.randn(n, 4, 1024, generator=g),
                                     "audio": torch.randn(n, 1582, generator=g),
                                     "visual": torch.randn(n, 342, generator=g)})


def bench_epoch(dataset: str, device, params, released: bool, epochs: int, profile: bool = False) -> dict:
    """A plain MGLRA + MRL training epoch (no MKD, no validation), the best of ``epochs``, and a test pass."""
    import torch
    erc = code()
    feats = erc.load_features(f"data/features/{dataset}.pt")
    if released:
        feats = released_dims(feats)
        graphs = erc.build_graphs(erc.get(feats, "lengths").tolist(), 3)
    else:
        graphs = erc.load_torch(f"data/graphs/{dataset}.pt")
    data = erc.DialogueData(feats, graphs["multimodal"]).to(device)  # as fit does: features on the device once
    config = erc.model_config(feats, params, dataset, use_mkd=False)
    torch.manual_seed(0)
    model = erc.make_model(config).to(device)
    objective = erc.build_objective(params, dataset, feats, len(erc.nesting(config)), use_mkd=False)
    objective.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def epoch():
        for batch in data.batches("train", 16, shuffle=True):
            batch = batch.to(device)
            loss = objective(model(batch), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    times, evals = [], []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        erc.predict(model, data, "test", device)
        evals.append(time.perf_counter() - start)
    memory = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if profile:  # one more epoch under the profiler: the operators that take the time
        from torch.profiler import ProfilerActivity, profile as profiler
        model.train()
        with profiler(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])) as p:
            epoch()
        print(f"{dataset} on {device.type}, one training epoch under the profiler:", file=sys.stderr)
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), file=sys.stderr)
    return {"what": f"{dataset}{' released dims' if released else ''} epoch", "device": device.type,
            "seconds": min(times), "test_pass": min(evals), "memory_gib": memory}


def bench_stage(dataset: str, params_raw: dict, epochs: int | None) -> dict:
    """Stage train's work: every seed of the model (validation, MKD and the per-epoch test records included) with
    the stage's workers, at the committed epochs (or ``epochs``), without the files' reading and writing."""
    import copy
    erc = code()
    raw = copy.deepcopy(params_raw)
    if epochs:
        raw["train"]["epochs"] = {d: epochs for d in raw["train"]["epochs"]}
    params = erc.validate_params(raw)
    feats = erc.load_features(f"data/features/{dataset}.pt")
    graphs = erc.load_torch(f"data/graphs/{dataset}.pt")
    teacher_logits = None
    if params.mkd.enabled:
        teacher_logits = erc.load_teacher_logits(f"models/teachers/{dataset}.pt", list(erc.get(feats, "features")),
                                                 len(erc.get(feats, "labels")))
    start = time.perf_counter()
    erc.train_model(dataset, feats, graphs, params, teacher_logits, progress=False)
    return {"what": f"{dataset} stage train ({len(params.train.seeds)} seeds, {params.workers} workers)",
            "device": params.device, "seconds": time.perf_counter() - start,
            "note": f"{params.for_dataset(dataset).train.epochs} epochs"}


def measure(args) -> list[dict]:
    import torch
    import yaml
    params = code().load_params()
    rows = []
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        for dataset in (["iemocap"] if args.released_dims else args.datasets):
            rows.append(bench_epoch(dataset, device, params, args.released_dims, args.epochs, args.profile))
    if args.stage:
        raw = yaml.safe_load(Path("params.yaml").read_text())
        for dataset in args.datasets:
            rows.append(bench_stage(dataset, raw, args.stage_epochs))
    return rows


def show(row: dict) -> str:
    extra = (f"   test pass {row['test_pass']:5.2f} s   peak {'GPU' if row['device'] == 'cuda' else 'RSS'} memory "
             f"{row['memory_gib']:.2f} GiB" if "test_pass" in row else f"   ({row['note']})")
    return f"{row['what'] + ' on ' + row['device']:58s} {row['seconds']:7.2f} s{extra}"


def compare(args) -> None:
    """This script on REV's src/ (a detached git worktree) and on this tree's, ``--rounds`` times, the two taking turns
    (before, after; then after, before; ...) so that a drift of the machine's speed (a shared host's neighbours move
    a 2-core VM's epoch by 20 % and more within minutes) weighs on both alike. Prints every round's figures and each
    figure's ratio per round, and their median."""
    rev = subprocess.run(["git", "rev-parse", "--short", args.compare], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    forwarded, given = [], iter(sys.argv[1:])
    for a in given:  # everything but --compare REV and --rounds N
        if a in ("--compare", "--rounds"):
            next(given, None)
        else:
            forwarded.append(a)
    labels = (f"before ({rev})", "after (this tree)")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / f"erc-{rev}"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), rev], cwd=ROOT, check=True)
        try:
            for r in range(args.rounds):
                results = {}
                order = ((labels[0], tree / "src"), (labels[1], ROOT / "src"))
                for label, src in (order if r % 2 == 0 else order[::-1]):
                    # that tree's erc first on the path (before the installed package), for the stages' workers too
                    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
                    env = dict(os.environ, PYTHONPATH=path)
                    out = subprocess.run([sys.executable, __file__, "--json", *forwarded], cwd=ROOT, check=True,
                                         capture_output=True, text=True, env=env).stdout
                    results[label] = json.loads(out.strip().splitlines()[-1])
                rounds.append(results)
                print(f"round {r + 1}")
                for label in labels:
                    print(f"  {label}")
                    for row in results[label]:
                        print("    " + show(row))
                sys.stdout.flush()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print("speed-up (before / after): each round, median")
    for i, row in enumerate(rounds[0][labels[0]]):
        ratios = [rd[labels[0]][i]["seconds"] / rd[labels[1]][i]["seconds"] for rd in rounds]
        shown = "  ".join(f"{x:5.2f}x" for x in ratios)
        print(f"  {row['what'] + ' on ' + row['device']:58s} {shown}   median {statistics.median(ratios):5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released-dims", action="store_true")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed (the best is shown)")
    parser.add_argument("--datasets", nargs="+", default=["iemocap", "meld"])
    parser.add_argument("--profile", action="store_true", help="also print one epoch's top operators (to stderr)")
    parser.add_argument("--stage", action="store_true", help="also time stage train's work (all seeds)")
    parser.add_argument("--stage-epochs", type=int, help="with --stage: this many epochs, not the committed ones")
    parser.add_argument("--compare", metavar="REV", help="before (REV's code) and after (this tree's), in turns")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: before / after pairs run in turns")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.compare:
        return compare(args)
    rows = measure(args)
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(show(row))


if __name__ == "__main__":
    main()
