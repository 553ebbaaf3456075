"""Validation-only probe of settings for plain MGLRA (no MRL, no MKD) and the bc-LSTM reference.

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
overrides rebuild the graphs in memory):

    python benchmarks/probe.py iemocap --heldout Ses04 --run model=bclstm \
        --run "" --run "model.hidden=128 model.graph_hidden=128"
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from erc.batching import DialogueData  # noqa: E402
from erc.features import load_features  # noqa: E402
from erc.graphs import build_graphs  # noqa: E402
from erc.io import InputError, load_torch  # noqa: E402
from erc.model import MGLRA  # noqa: E402
from erc.params import get, load_params, validate_params  # noqa: E402
from erc.runs import bclstm_model, bclstm_settings, train_settings  # noqa: E402
from erc.training import (build_objective, fit, model_config, pick_device, seed_everything,  # noqa: E402
                          validation_score)


def override(params: dict, assignment: str) -> dict:
    """``model.hidden=128`` sets params['model']['hidden'] = 128 (YAML-parsed value)."""
    key, _, value = assignment.partition("=")
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)
    return params


def heldout_split(feats: dict, session: str) -> dict:
    """Training dialogues of ``session`` are filed under test with their labels (the held-out set); the rest
    of train stays train; standard validation dialogues of other sessions stay validation, those of
    ``session`` join test with hidden labels, like the real test dialogues (``fit`` never reads test)."""
    feats = dict(feats)
    in_session = [d.startswith(session) for d in feats["dialogue_ids"]]
    hide = torch.tensor([held and s == "valid" for held, s in zip(in_session, feats["splits"])])
    feats["splits"] = [("test" if held else "train") if s == "train" else ("test" if held or s == "test" else "valid")
                       for held, s in zip(in_session, feats["splits"])]
    feats["labels"] = feats["labels"].clone()
    feats["labels"][hide.repeat_interleave(feats["lengths"])] = -1
    return feats


def run(dataset: str, feats: dict, graphs: dict, params: dict, seed: int, device, heldout: bool = False,
        bclstm: bool = False) -> dict:
    """``bclstm``: train the reference instead of MGLRA.
    ``heldout``: also score the labelled test-split utterances (the held-out session) after every epoch."""
    seed_everything(seed)
    objective = build_objective(params, dataset, feats, 1, use_mkd=False)
    if bclstm:
        settings, model = bclstm_settings(params, dataset), bclstm_model(feats, params)
        data = DialogueData(feats, graphs["unimodal"])
    else:
        settings = train_settings(params, dataset)
        model = MGLRA(**model_config(feats, params, dataset, use_mrl=False, use_mkd=False))
        data = DialogueData(feats, graphs["multimodal"])
    heldout_scores = []

    def score_heldout(model, epoch):
        scores, _ = validation_score(model, data, objective, device, feats["classes"], settings["batch_size"], "test")
        heldout_scores.append(scores["weighted_f1"])

    start = time.perf_counter()
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, progress=False,
                 on_epoch=score_heldout if heldout else None, **settings)
    scores = heldout_scores or [row["valid_weighted_f1"] for row in result["history"]]
    report = {"best": max(scores), "epoch": result["epoch"], "epochs": len(scores),
              "last10": sum(scores[-10:]) / len(scores[-10:]), "seconds": time.perf_counter() - start}
    if heldout:
        report.update(selected=scores[result["epoch"] - 1], peak_epoch=scores.index(max(scores)) + 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--run", action="append", default=[], help="space-separated key=value overrides")
    parser.add_argument("--heldout", nargs="+", default=[None], metavar="SES",
                        help="IEMOCAP session(s) whose training dialogues validate, e.g. Ses04; several = one "
                             "run per session and their mean (leave-one-session-out: Ses01 Ses02 Ses03 Ses04)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    all_feats = load_features(f"data/features/{args.dataset}.pt")
    graphs = load_torch(f"data/graphs/{args.dataset}.pt")
    device = pick_device()
    for group in args.run or [""]:
        params, bclstm = load_params(), "model=bclstm" in group.split()
        for assignment in group.split():
            if assignment != "model=bclstm":
                override(params, assignment)
        params = validate_params(params, f"--run {group!r}")  # a mistyped override is refused, not ignored
        window = (get(params, "graphs.window_past"), get(params, "graphs.window_future"))
        group_graphs = graphs if tuple(graphs["window"]) == window else build_graphs(
            all_feats["lengths"].tolist(), len(all_feats["features"]), *window)
        label, bests, selected = group or "defaults", [], []
        for session in args.heldout:
            feats = heldout_split(all_feats, session) if session else all_feats
            for seed in args.seeds:
                r = run(args.dataset, feats, group_graphs, copy.deepcopy(params), seed, device, heldout=bool(session),
                        bclstm=bclstm)
                bests.append(r["best"])
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
