"""Validation-only probe of settings: the pipeline's model as params.yaml says (MRL, MKD), plain MGLRA
(``model=mglra``: no MRL, no MKD) or the bc-LSTM reference (``model=bclstm``).

Test labels are hidden by ``load_features``, so nothing here can see them. Two kinds of validation:

* the standard validation split (default);
* ``--heldout SES``: IEMOCAP only. The training dialogues of one session (e.g. ``Ses04``) are held out and
  the model trains on the other training sessions. IEMOCAP's standard validation dialogues come from the
  training sessions' speakers, while test (session 5) has new speakers; a held-out session asks the question
  test asks, without test labels. The pipeline's protocol is replayed inside the training split: the epoch
  is selected on the standard validation dialogues of the *other* sessions (those of the held-out session
  are dropped), and the held-out session is scored at that epoch ("selected", what test measures) and at its
  own best epoch ("peak", optimistic). Several sessions (``--heldout Ses01 Ses02 Ses03 Ses04``) run
  leave-one-session-out and print the means: one 28-dialogue session separates settings only to about ±1 point.

Prints, per run, the best validation weighted F1 and its epoch (with ``--heldout``: the held-out session's
selected and peak w-F1), and the mean over the last 10 epochs (less sensitive to the selection's optimism).
Settings are ``key=value`` overrides of params.yaml, one run per ``--run`` group (``graphs.window_*``
overrides rebuild the graphs in memory; a mistyped key is refused):

    python benchmarks/probe.py iemocap --heldout Ses04 --run model=bclstm \
        --run model=mglra --run "model=mglra model.speaker_init_std=0.1" --run "mkd.placement=unimodal"

With MKD the unimodal teachers are trained first on the same split (with ``--heldout``, without the held-out
session: its labels must not shape the teachers' logits) and cached under ``--teacher-cache``, keyed by the
split and every parameter they read, so that runs differing only in student settings share them.
"""
import argparse
import copy
import json
import sys

import yaml

from erc.config.params import load_params, validate_params
from erc.data.feature_file import load_features
from erc.data.graphs import build_graphs
from erc.runtime.device import stage_device
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.training.probes import Probe, heldout_split, probe_run, split_teacher_logits

# shorthand tokens of a --run group: the reference, and the backbone alone (no MRL, no MKD)
SHORTHANDS = {"model=bclstm": [], "model=mglra": ["mrl.enabled=false", "mkd.enabled=false"]}


def override(params, assignment: str) -> dict:
    """``model.hidden=128`` sets params['model']['hidden'] = 128 (YAML-parsed value)."""
    key, _, value = assignment.partition("=")
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)
    return params


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--run", action="append", default=[], help="space-separated key=value overrides")
    parser.add_argument("--heldout", nargs="+", default=[None], metavar="SES",
                        help="IEMOCAP session(s) whose training dialogues validate, e.g. Ses04; several = one "
                             "run per session and their mean (leave-one-session-out: Ses01 Ses02 Ses03 Ses04)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", help="append one JSON line per run (settings, session, seed, scores) to this file")
    parser.add_argument("--teacher-cache", default="/tmp/erc-probe-teachers",
                        help="where MKD's in-split teachers are kept between runs ('' = nowhere)")
    args = parser.parse_args()
    all_feats = load_features(f"data/features/{args.dataset}.pt")
    graphs = load_torch(f"data/graphs/{args.dataset}.pt")
    device = stage_device(load_params())
    for group in args.run or [""]:
        params, bclstm = load_params().model_dump(), "model=bclstm" in group.split()
        for token in group.split():
            for assignment in SHORTHANDS.get(token, [token]):
                override(params, assignment)
        params = validate_params(params, f"--run {group!r}")  # a mistyped override is refused, not ignored
        window = (params.graphs.window_past, params.graphs.window_future)
        group_graphs = graphs if tuple(graphs["window"]) == window else build_graphs(
            all_feats.lengths.tolist(), len(all_feats.features), *window)
        label, bests, selected = group or "defaults", [], []
        for session in args.heldout:
            feats = heldout_split(all_feats, session) if session else all_feats
            teachers = None
            if params.mkd.enabled and not bclstm:  # trained on this split only: held-out labels stay out
                teachers = split_teacher_logits(args.dataset, feats, group_graphs, params, args.teacher_cache or None)
            for seed in args.seeds:
                r = probe_run(Probe(args.dataset, feats, group_graphs, copy.deepcopy(params), seed, device,
                                    heldout=bool(session), bclstm=bclstm, teacher_logits=teachers))
                bests.append(r["best"])
                if args.out:
                    with open(args.out, "a") as out:
                        out.write(json.dumps({"dataset": args.dataset, "run": label, "session": session, "seed": seed,
                                              **r}) + "\n")
                if session:
                    selected.append(r["selected"])
                    print(f"{args.dataset} [{label}] held-out {session} seed {seed}: selected w-F1 {r['selected']:.2f} "
                          f"(epoch {r['epoch']}/{r['epochs']} by validation), peak {r['best']:.2f} (epoch "
                          f"{r['peak_epoch']}), last-10 mean {r['last10']:.2f} ({r['seconds']:.0f} s)", flush=True)
                else:
                    print(f"{args.dataset} [{label}] seed {seed}: best valid w-F1 {r['best']:.2f} at epoch "
                          f"{r['epoch']}/{r['epochs']}, last-10 mean {r['last10']:.2f} ({r['seconds']:.0f} s)", flush=True)
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        if selected:
            print(f"{args.dataset} [{label}] over {len(bests)} runs: mean selected held-out w-F1 {mean(selected):.2f}, "
                  f"mean peak {mean(bests):.2f}", flush=True)
        else:
            print(f"{args.dataset} [{label}] mean best valid w-F1 over {len(bests)} runs: {mean(bests):.2f}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        sys.exit(f"error: {err}")
