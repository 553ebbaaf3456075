"""Leave-one-session-out choice of a fine-tuning recipe (IEMOCAP), validation only.

``probe.py --heldout`` holds a session out of the downstream model, but the pipeline's text features were
fine-tuned with that session's labels, so it cannot judge a fine-tuning recipe. Here, for each held-out session,
the text encoders are fine-tuned again **without** it (``erc.training.probes.heldout_finetuned``): the held-out
dialogues' features come from the all-data encoder, as the unseen test speakers' do, and the held-out session then
scores MGLRA + MRL + MKD (teachers trained inside the split) at the epoch chosen on the other sessions' validation
dialogues, as ``probe.py --heldout`` does. Test labels are hidden before anything runs.

    python benchmarks/finetune_loso.py --heldout Ses03 Ses04 --seeds 0 1 2 \
        --run finetune.fold_by=dialogue --run 'finetune.fold_by={"iemocap":"session","meld":"dialogue"}'

Encoders are cached under ``--work`` (one per distinct training set and setting: recipes share "full"); each run
appends one JSON line per session and seed to ``--out``. Fine-tuning and seeds run ``workers`` at a time, one
thread each: on 2 cores a held-out session costs ≈ 15 min of fine-tuning per recipe and ≈ 4 min per seed.
"""
import argparse
import copy
import json
import statistics
import sys

from erc.config.params import load_params, validate_params
from erc.data.datasets import load_dialogues
from erc.data.graphs import build_graphs
from erc.runtime.device import stage_device
from erc.runtime.errors import InputError
from erc.runtime.parallel import run_parallel
from erc.training.probes import Probe, check_sessions, heldout_finetuned, probe_run, split_teacher_logits
from probe import override  # benchmarks/probe.py, beside this script

DATASET = "iemocap"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", action="append", default=[], help="space-separated key=value overrides")
    parser.add_argument("--heldout", nargs="+", default=["Ses03", "Ses04"], metavar="SES")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", help="append one JSON line per run, session and seed to this file")
    parser.add_argument("--work", default="/tmp/erc-finetune-loso", help="cache of fine-tuned encoders")
    parser.add_argument("--teacher-cache", default="/tmp/erc-probe-teachers")
    args = parser.parse_args()
    runs, device = [], stage_device(load_params())
    if len(set(args.run)) != len(args.run):
        raise InputError("--run: the same group twice")
    for group in args.run or [""]:
        params = load_params().model_dump()
        for token in group.split():
            override(params, token)
        runs.append((group or "defaults", validate_params(params, f"--run {group!r}")))
    check_sessions(args.heldout, load_dialogues(DATASET))  # before any fine-tuning
    selected = {label: [] for label, _ in runs}
    for session in args.heldout:
        all_feats = heldout_finetuned(DATASET, session, [p for _, p in runs], args.work)
        for (label, params), (feats, encoders) in zip(runs, all_feats):
            window = (params.graphs.window_past, params.graphs.window_future)
            graphs = build_graphs(feats.lengths.tolist(), len(feats.features), *window)
            teachers = split_teacher_logits(DATASET, feats, graphs, params, args.teacher_cache or None) \
                if params.mkd.enabled else None
            jobs = {seed: Probe(DATASET, feats, graphs, copy.deepcopy(params), seed, device, heldout=True,
                               teacher_logits=teachers)
                    for seed in args.seeds}
            for seed, r in run_parallel(probe_run, jobs, params.workers).items():
                selected[label].append(r["selected"])
                print(f"[{label}] held-out {session} seed {seed}: selected w-F1 {r['selected']:.2f} (epoch "
                      f"{r['epoch']}/{r['epochs']}), peak {r['best']:.2f}; text encoders {encoders}",
                      flush=True)
                if args.out:
                    with open(args.out, "a") as out:
                        out.write(json.dumps({"dataset": DATASET, "run": label, "session": session, "seed": seed,
                                              "finetune": encoders, **r}) + "\n")
    for label, values in selected.items():  # session-major: len(seeds) values per held-out session
        per_session = {s: values[i * len(args.seeds):(i + 1) * len(args.seeds)] for i, s in enumerate(args.heldout)}
        print(f"[{label}] selected held-out w-F1 {statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f} over "
              f"{len(values)} runs; by session " + ", ".join(f"{s} {statistics.mean(v):.2f}" for s, v in
                                                               per_session.items()), flush=True)


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        sys.exit(f"error: {err}")
