"""Which model answers a dialogue that has only text (``mkd.text_only``), chosen on validation only.

    python benchmarks/text_only_choice.py iemocap [--out docs/evidence/text_only_choice.jsonl]

Scores on the validation split, with every utterance's audio marked missing, each answer the committed run can
give: ``fused`` (the full model's output), ``student`` (the text student head U_text at its own
validation-selected epoch), ``teacher`` (the frozen text teacher, one seed) and ``student+teacher`` (the mean
of the two softmax distributions). Test labels are hidden by ``load_features``: nothing here can see them.
The rule, fixed before this was run: per dataset, the answer with the highest mean validation weighted F1
over the checkpoint's seeds.
"""
import argparse
import json

import torch

from erc.data.batching import DialogueData
from erc.data.datasets import SPLITS
from erc.data.feature_file import load_features, text_only, utterance_split
from erc.data.graphs import GRAPH_KEYS
from erc.evaluation.metrics import classification_metrics
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import MGLRA
from erc.models.predict import predict
from erc.runtime.files import load_torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = args.dataset
    feats = load_features(f"data/features/{ds}.pt")  # test labels hidden
    graphs = load_torch(f"data/graphs/{ds}.pt", "graph file", GRAPH_KEYS)
    checkpoint = Checkpoint.load(f"models/{ds}.pt")
    teacher = load_torch(f"models/teachers/{ds}.pt", "teacher file")["text"]
    data = DialogueData(text_only(feats), graphs["multimodal"])
    valid = utterance_split(feats) == SPLITS.index("valid")
    classes = feats.classes
    rows = []
    for seed, run in checkpoint.runs.items():
        model = MGLRA(checkpoint.config)
        model.load_state_dict(run["state"])
        fused = predict(model, data, "valid", "cpu")
        model.load_state_dict(run.get("text_only_state", run["state"]))
        student = predict(model, data, "valid", "cpu")
        labels, order = student["labels"], student["utterances"]
        assert torch.equal(labels, feats.labels[order])
        answers = {"fused": torch.softmax(fused["logits"][-1], -1),
                   "student": torch.softmax(student["student_logits"]["text"], -1),
                   "teacher": torch.softmax(teacher["logits"][order], -1)}
        answers["student+teacher"] = (answers["student"] + answers["teacher"]) / 2
        row = {"dataset": ds, "seed": seed, **{name: classification_metrics(labels, p.argmax(-1), classes)["weighted_f1"]
                                               for name, p in answers.items()}}
        rows.append(row)
        print(json.dumps(row))
    assert int(valid.sum()) == len(labels)
    names = [k for k in rows[0] if k not in ("dataset", "seed")]
    means = {k: sum(r[k] for r in rows) / len(rows) for k in names}
    print(ds, "mean validation w-F1, text only:", {k: round(v, 2) for k, v in means.items()},
          "-> chosen:", max(means, key=means.get))
    if args.out:
        with open(args.out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
