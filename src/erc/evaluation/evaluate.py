"""The evaluation stage's work: the only place that reads test labels. Metrics per seed and mean ± std,
per nesting size, per modality (teachers and MKD student heads), the references, and the plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from erc.data.batching import DialogueData  # noqa: E402
from erc.data.datasets import SPLITS  # noqa: E402
from erc.data.feature_file import FeatureFile, text_only, utterance_dialogues, utterance_split  # noqa: E402
from erc.runtime.errors import InputError
from erc.runtime.files import atomic_path  # noqa: E402
from erc.evaluation.metrics import classification_metrics, summarise  # noqa: E402
from erc.models.mglra import TEXT_ONLY_ANSWERS, restore, text_only_head  # noqa: E402
from erc.models.predict import predict  # noqa: E402
from erc.models.checkpoint import Checkpoint  # noqa: E402

EVAL_SPLITS = ("valid", "test")


def split_metrics(logits: torch.Tensor, feats: FeatureFile, classes) -> dict:
    """Metrics of flat (N_all, C) logits on the validation and test utterances."""
    split = utterance_split(feats)
    return {s: classification_metrics(feats.labels[split == SPLITS.index(s)],
                                      logits[split == SPLITS.index(s)].argmax(-1), classes) for s in EVAL_SPLITS}


def summary(per_seed: list[dict]) -> dict:
    return {s: summarise([run[s] for run in per_seed]) for s in EVAL_SPLITS}


def evaluate_model(checkpoint: Checkpoint, feats: FeatureFile, graphs: dict, text_head: str = "fused",
                   teacher_logits: torch.Tensor | None = None, device="cpu") -> tuple[dict, dict]:
    """Per-seed outputs on valid/test for every nesting size and student head; returns (metrics, predictions).
    ``text_head`` (``mkd.text_only``) names what answers a dialogue without audio; its scores are the
    ``text_only`` metrics. Every answer the checkpoint can give is reported beside it (``text_only_fused``,
    ``text_only_student``, ``text_only_teacher``, ``text_only_student+teacher``); the teacher's need
    ``teacher_logits``, the frozen text teacher's logits of every utterance (N, C), in feature-file order.
    Everything runs on ``device``; the predictions come back on the host."""
    classes = feats.classes
    data = DialogueData(feats, graphs["multimodal"]).to(device)
    # every utterance's audio / visual marked missing: what the model does with a dialogue that has only text
    text_data = DialogueData(text_only(feats), graphs["multimodal"]).to(device) if len(feats.features) > 1 else None
    teacher_logits = teacher_logits.to(device) if teacher_logits is not None else None
    sizes, config = checkpoint.config.nesting, checkpoint.config
    answers = [a for a in TEXT_ONLY_ANSWERS if text_only_head(config, a) == a
               and (teacher_logits is not None or "teacher" not in a)]
    head = text_only_head(config, text_head)
    if head not in answers:
        raise InputError(f"mkd.text_only: {text_head} needs the text teacher's logits, which were not given")
    per_seed, per_size, students, test_predictions = [], {m: [] for m in sizes}, {}, {}
    ensemble = {}  # split -> summed class probabilities of the seeds, each at its validation-picked epoch
    text_runs = {a: [] for a in answers}

    def scores(out: dict, logits_of) -> dict:
        """Metrics of ``logits_of(split outputs)`` on each evaluated split."""
        return {s: classification_metrics(out[s]["labels"], logits_of(out[s]).argmax(-1), classes) for s in EVAL_SPLITS}

    for seed, run in checkpoint.runs.items():
        model = restore(config, run["state"], device)
        outputs = {s: predict(model, data, s, device) for s in EVAL_SPLITS}
        for s in EVAL_SPLITS:
            ensemble[s] = ensemble.get(s, 0) + torch.softmax(outputs[s]["logits"][-1].double(), -1)
        per_seed.append({"seed": seed, "epoch": run["epoch"], **scores(outputs, lambda o: o["logits"][-1]),
                         **({"text_only_epoch": run["text_only_epoch"]} if "text_only_epoch" in run else {})})
        if text_data is not None:
            text_out = {s: predict(model, text_data, s, device) for s in EVAL_SPLITS}
            text_runs["fused"].append(scores(text_out, lambda o: o["logits"][-1]))
            if "student" in text_runs:  # the text student head at its own validation-selected epoch, where kept
                if "text_only_state" in run:
                    own = restore(config, run["text_only_state"], device)
                    text_out = {s: predict(own, text_data, s, device) for s in EVAL_SPLITS}
                text_runs["student"].append(scores(text_out, lambda o: o["student_logits"]["text"]))
            if "teacher" in text_runs:
                text_runs["teacher"].append(scores(text_out, lambda o: teacher_logits[o["utterances"]]))
            if "student+teacher" in text_runs:  # the mean of the two distributions
                text_runs["student+teacher"].append(scores(text_out, lambda o: (
                    torch.softmax(o["student_logits"]["text"], -1)
                    + torch.softmax(teacher_logits[o["utterances"]].to(o["student_logits"]["text"]), -1)) / 2))
        for i, m in enumerate(sizes):
            per_size[m].append(scores(outputs, lambda o: o["logits"][i]))
        for modality in outputs["test"]["student_logits"]:
            students.setdefault(modality, []).append(scores(outputs, lambda o: o["student_logits"][modality]))
        keep = outputs["test"]["labels"] >= 0  # a corpus's unlabelled test turns are not scored
        test_predictions[seed] = (outputs["test"]["labels"][keep].cpu(),
                                  outputs["test"]["logits"][-1].argmax(-1)[keep].cpu(),
                                  outputs["test"]["utterances"][keep].cpu())
    n_blocks = len(config.input_dims)
    metrics = {
        **summary(per_seed),
        "nesting": {str(m): {"dim": m * n_blocks, **summary(per_size[m])} for m in sizes},
        "students": {mod: summary(runs) for mod, runs in students.items()},
        **({"text_only": summary(text_runs[head]), "text_only_head": head} if text_runs[head] else {}),
        **({f"text_only_{a}": summary(runs) for a, runs in text_runs.items() if runs} if len(answers) > 1 else {}),
        "ensemble": {s: classification_metrics(outputs[s]["labels"], ensemble[s].argmax(-1), classes)
                     for s in EVAL_SPLITS},  # what predict.py serves: the mean of the seeds' probabilities
        "per_seed": [strip(run) for run in per_seed],
    }
    return metrics, test_predictions


def devices(feats: FeatureFile, checkpoint: Checkpoint, teachers: dict, references: dict, device) -> dict:
    """Where each stage of this run computed (outputs made before the key existed ran on the CPU)."""
    made = {**feats.devices,
            "teachers": next((t.get("device", "cpu") for t in teachers.values() if isinstance(t, dict)), "cpu"),
            "references": references.get("device", "cpu"), "train": checkpoint.device,
            "evaluate": torch.device(device).type}
    return made


def headline(metrics: dict) -> dict:
    """The figures a reader compares first (``dvc metrics diff``): valid and test Acc and weighted F1, mean ± std
    over seeds, and the test weighted F1 from text alone; the rest stays in the detail file."""
    keep = {s: {k: metrics[s][k] for k in ("acc", "weighted_f1")} for s in EVAL_SPLITS}
    if "text_only" in metrics:
        keep["text_only"] = {"test": {"weighted_f1": metrics["text_only"]["test"]["weighted_f1"]}}
    if "ensemble" in metrics:  # the seeds' mean probabilities: what predict.py serves
        keep["ensemble"] = {"test": {"weighted_f1": metrics["ensemble"]["test"]["weighted_f1"]}}
    if "protocols" in metrics:  # the paper's protocol (each seed's epoch picked on test): a measurement, not a result
        picked = metrics["protocols"]["test_picked"]["weighted_f1"]  # median, best and the gap: in the details
        keep["paper_protocol_test_picked"] = {"test": {"weighted_f1": {"mean": picked["mean"]}}}
    return keep


def strip(run: dict) -> dict:
    """Keep per-seed numbers readable in ``dvc metrics show``: Acc, weighted and macro F1, per-class F1."""
    return {"seed": run["seed"], "epoch": run["epoch"], **{k: run[k] for k in ("text_only_epoch",) if k in run},
            **{s: run[s] for s in EVAL_SPLITS}}


def evaluate_teachers(teachers: dict, feats: FeatureFile, where="teacher file") -> dict:
    n = len(feats.labels)
    if not isinstance(teachers, dict) or not all(isinstance(t, dict) and {"logits", "epoch"} <= set(t)
                                                 and len(t["logits"]) == n for t in teachers.values()):
        raise InputError(f"{where}: not a teacher file for these features (modality -> logits of all {n} utterances)")
    return {m: {**split_metrics(t["logits"], feats, feats.classes), "epoch": t["epoch"]} for m, t in teachers.items()}


def evaluate_references(references: dict, feats: FeatureFile) -> dict:
    classes = feats.classes
    bclstm = [{**split_metrics(r["logits"], feats, classes), "epoch": r["epoch"]} for r in references["bc_lstm"].values()]
    logreg = split_metrics(references["logreg"]["logits"], feats, classes)
    return {"logreg": {s: summarise([logreg[s]]) for s in EVAL_SPLITS} | {"C": references["logreg"]["C"]},
            "bc_lstm": summary(bclstm)}


# ---------------------------------------------------------------- plots
def write_csv(frame: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_png(figure, path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def confusion_plots(labels, predictions, classes, out_dir) -> None:
    names = np.array(classes)
    write_csv(pd.DataFrame({"actual": names[labels.numpy()], "predicted": names[predictions.numpy()]}),
              f"{out_dir}/confusion.csv")
    matrix = confusion_matrix(labels, predictions, labels=range(len(classes)), normalize="true")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("test confusion (row-normalised, all seeds)")
    write_png(fig, f"{out_dir}/confusion.png")


def nesting_plots(metrics: dict, variant: str, out_dir) -> None:
    rows = [{"variant": variant, "size": int(m), "dim": v["dim"],
             "valid_weighted_f1": v["valid"]["weighted_f1"]["mean"], "test_weighted_f1": v["test"]["weighted_f1"]["mean"],
             "test_weighted_f1_std": v["test"]["weighted_f1"]["std"], "test_acc": v["test"]["acc"]["mean"]}
            for m, v in metrics["nesting"].items()]
    frame = pd.DataFrame(rows)
    write_csv(frame, f"{out_dir}/nesting.csv")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.errorbar(frame["dim"], frame["test_weighted_f1"], yerr=frame["test_weighted_f1_std"], marker="o",
                capsize=3, label=f"{variant} test")
    ax.plot(frame["dim"], frame["valid_weighted_f1"], marker="s", linestyle="--", label=f"{variant} valid")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("representation size (dims of the fused vector)")
    ax.set_ylabel("weighted F1 (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    write_png(fig, f"{out_dir}/nesting.png")


def modality_plots(teachers: dict, students: dict, out_dir) -> None:
    rows = []
    for m in teachers:
        rows.append({"modality": m, "model": "teacher", "test_weighted_f1": teachers[m]["test"]["weighted_f1"]})
        if m in students:
            rows.append({"modality": m, "model": "student head",
                         "test_weighted_f1": students[m]["test"]["weighted_f1"]["mean"]})
    frame = pd.DataFrame(rows)
    write_csv(frame, f"{out_dir}/modalities.csv")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k, (model, group) in enumerate(frame.groupby("model", sort=False)):
        positions = [list(teachers).index(m) + 0.38 * k for m in group["modality"]]
        ax.bar(positions, group["test_weighted_f1"], width=0.36, label=model)
    ax.set_xticks([i + 0.19 for i in range(len(teachers))], list(teachers))
    ax.set_ylabel("test weighted F1 (%)")
    ax.set_title("unimodal teachers vs the student's per-modality heads")
    ax.legend()
    write_png(fig, f"{out_dir}/modalities.png")


def curve_plots(checkpoint: Checkpoint, out_dir) -> None:
    """Validation w-F1 and training loss per epoch of every seed, the selected epoch marked (from the checkpoint's
    histories, so that the curves are a PNG visible without a network)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    for seed, run in checkpoint.runs.items():
        epochs = [row["epoch"] for row in run["history"]]
        line, = top.plot(epochs, [row["valid_weighted_f1"] for row in run["history"]], label=f"seed {seed}")
        top.plot(run["epoch"], run["history"][run["epoch"] - 1]["valid_weighted_f1"], "o", color=line.get_color())
        bottom.plot(epochs, [row["train_loss"] for row in run["history"]], color=line.get_color())
    top.set_ylabel("validation weighted F1 (%)")
    top.set_title("training curves (dot: the epoch kept, chosen on validation)")
    top.legend(fontsize=7)
    top.grid(alpha=0.3)
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("epoch")
    bottom.grid(alpha=0.3)
    write_png(fig, f"{out_dir}/curves.png")


def prediction_table(test_predictions: dict, feats: FeatureFile, out_dir) -> None:
    """Per seed, each test utterance's dialogue, label and full-size prediction (utterance = index in the feature
    file); the dialogue column lets ``erc.reporting.bootstrap`` resample whole dialogues."""
    dialogue_of = utterance_dialogues(feats)
    frames = [pd.DataFrame({"seed": seed, "utterance": utt.numpy(), "dialogue": dialogue_of[utt.numpy()],
                            "label": labels.numpy(), "prediction": pred.numpy()})
              for seed, (labels, pred, utt) in test_predictions.items()]
    write_csv(pd.concat(frames), f"{out_dir}/test_predictions.csv")


def markdown_summary(dataset: str, metrics: dict) -> str:
    def cell(block):
        return f"{block['mean']:.2f} ± {block['std']:.2f}"
    lines = [f"| {dataset} | test Acc | test w-F1 | valid w-F1 |", "|---|---|---|---|"]
    lines.append(f"| model | {cell(metrics['test']['acc'])} | {cell(metrics['test']['weighted_f1'])} | "
                 f"{cell(metrics['valid']['weighted_f1'])} |")
    if "text_only" in metrics:
        text = metrics["text_only"]
        lines.append(f"| model, text only (answered by: {metrics['text_only_head']}) | {cell(text['test']['acc'])} | "
                     f"{cell(text['test']['weighted_f1'])} | {cell(text['valid']['weighted_f1'])} |")
    for name, ref in metrics.get("references", {}).items():
        lines.append(f"| {name} | {cell(ref['test']['acc'])} | {cell(ref['test']['weighted_f1'])} | "
                     f"{cell(ref['valid']['weighted_f1'])} |")
    return "\n".join(lines) + "\n"

