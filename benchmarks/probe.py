"""Validation-only probe of settings for plain MGLRA (no MRL, no MKD) and the bc-LSTM reference.

Test labels are hidden by ``load_features``, so nothing here can see them. Two kinds of validation:

* the standard validation split (default);
* ``--heldout SES``: IEMOCAP only. The training dialogues of one session (e.g. ``Ses04``) become the
  validation set and the model trains on the other training sessions. IEMOCAP's standard validation
  dialogues come from the training sessions' speakers, while test (session 5) has new speakers; a held-out
  session asks the question test asks, without test labels. The standard validation dialogues are unused.
  Several sessions (``--heldout Ses01 Ses02 Ses03 Ses04``) run leave-one-session-out and print the mean: one
  28-dialogue session separates settings only to about ±1 point.

Prints, per setting, the best validation weighted F1 and its epoch, and the mean over the last 10 epochs
(less sensitive to the selection's optimism). Settings are ``-S key=value`` overrides of params.yaml, one
run per ``--run`` group (``graphs.window_*`` overrides rebuild the graphs in memory):

    python benchmarks/probe.py iemocap --heldout Ses04 --run model=bclstm \
        --run "" --run "model.hidden=128 model.graph_hidden=128"
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from erc.batching import DialogueData  # noqa: E402
from erc.features import load_features  # noqa: E402
from erc.graphs import build_graphs  # noqa: E402
from erc.io import load_torch  # noqa: E402
from erc.model import MGLRA  # noqa: E402
from erc.params import get, load_params  # noqa: E402
from erc.runs import bclstm_model, bclstm_settings, train_settings  # noqa: E402
from erc.training import build_objective, fit, model_config, pick_device, seed_everything  # noqa: E402


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
    """Training dialogues of ``session`` become validation; the rest of train stays train; the standard
    validation (and test) dialogues are filed under test, which ``fit`` never reads."""
    feats = dict(feats)
    feats["splits"] = [("valid" if d.startswith(session) else "train") if s == "train" else "test"
                       for d, s in zip(feats["dialogue_ids"], feats["splits"])]
    return feats


def run(dataset: str, feats: dict, graphs: dict, params: dict, seed: int, device) -> dict:
    """``params['model'] == 'bclstm'`` trains the reference (model.* from params.yaml) instead of MGLRA."""
    seed_everything(seed)
    objective = build_objective(params, dataset, feats, 1, use_mkd=False)
    if params.get("model") == "bclstm":
        params["model"] = load_params()["model"]
        settings, model = bclstm_settings(params, dataset), bclstm_model(feats, params)
        data = DialogueData(feats, graphs["unimodal"])
    else:
        settings = train_settings(params, dataset)
        model = MGLRA(**model_config(feats, params, dataset, use_mrl=False, use_mkd=False))
        data = DialogueData(feats, graphs["multimodal"])
    start = time.perf_counter()
    result = fit(model, data, objective, feats["classes"], seed=seed, device=device, progress=False, **settings)
    scores = [row["valid_weighted_f1"] for row in result["history"]]
    return {"best": scores[result["epoch"] - 1], "epoch": result["epoch"], "epochs": len(scores),
            "last10": sum(scores[-10:]) / len(scores[-10:]), "seconds": time.perf_counter() - start}


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
        params = load_params()
        for assignment in group.split():
            override(params, assignment)
        window = (get(params, "graphs.window_past"), get(params, "graphs.window_future"))
        group_graphs = graphs if tuple(graphs["window"]) == window else build_graphs(
            all_feats["lengths"].tolist(), len(all_feats["features"]), *window)
        label, bests = group or "defaults", []
        for session in args.heldout:
            feats = heldout_split(all_feats, session) if session else all_feats
            where = f" held-out {session}" if session else ""
            for seed in args.seeds:
                r = run(args.dataset, feats, group_graphs, copy.deepcopy(params), seed, device)
                bests.append(r["best"])
                print(f"{args.dataset} [{label}]{where} seed {seed}: best valid w-F1 {r['best']:.2f} at epoch "
                      f"{r['epoch']}/{r['epochs']}, last-10 mean {r['last10']:.2f} ({r['seconds']:.0f} s)", flush=True)
        print(f"{args.dataset} [{label}] mean best valid w-F1 over {len(bests)} runs: {sum(bests) / len(bests):.2f}",
              flush=True)


if __name__ == "__main__":
    main()
