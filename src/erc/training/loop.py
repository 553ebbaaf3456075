"""Training with honest selection: the epoch kept is the one with the best validation weighted F1
(ties: lower validation loss). Test labels never reach this module (``load_features`` hides them)."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from erc.data.feature_file import FeatureFile
from erc.data.batching import DialogueData, drop_modalities
from erc.runtime.device import make_deterministic
from erc.training.losses import distillation_loss, task_loss
from erc.models.mglra import MGLRAConfig
from erc.models.mrl import matryoshka_loss, nesting_sizes
from erc.evaluation.metrics import classification_metrics
from erc.config.params import Params
from erc.training.selection import BestEpoch, epoch_loop
from erc.models.predict import eval_batch_size, predict, split_probabilities


def seed_everything(seed: int) -> torch.Generator:
    """Seed once per run; the returned generator drives the batch order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Schedule:
    """How ``fit`` trains one run: params.yaml's ``train`` settings (``train_settings``), and the run's own seed,
    name and extras (``dataclasses.replace(schedule, seed=...)``).

    ``modality_dropout``: see ``drop_modalities``; its draws come from a generator of their own, so the batch order
    and the model's initialisation are those of the run without it. ``student`` (a modality with a unimodal student
    head): that head is also selected on validation for its own task, answering alone. ``record`` (a split, "test"
    in the stages): that split's class probabilities after every epoch are returned too."""
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    seed: int = 0
    modality_dropout: float = 0.0
    modality_dropout_unit: str = "utterance"
    student: str | None = None
    record: str | None = None
    desc: str = "train"
    progress: bool = True

    def but(self, **changes) -> "Schedule":
        return dataclasses.replace(self, **changes)


def train_settings(params: Params, dataset: str) -> Schedule:
    """The ``Schedule`` that params.yaml's ``train`` section sets (teachers, the model and the references share it)."""
    train = params.for_dataset(dataset).train
    return Schedule(epochs=train.epochs, lr=train.lr, weight_decay=train.weight_decay, batch_size=train.batch_size)


def seeds(params: Params) -> list[int]:
    return params.train.seeds


def live_for(directory: str, live_factory=None):
    """A DVCLive logger for ``directory`` from ``live_factory`` (``erc.runtime.live.live_logger``), or None without one."""
    return live_factory(directory) if live_factory else None


def model_config(feats: FeatureFile, params: Params, dataset: str, modalities=None, use_mrl=None, use_mkd=None) -> MGLRAConfig:
    """``MGLRA``'s config from the feature file and params.yaml (stored in checkpoints)."""
    p = params.for_dataset(dataset)
    modalities = modalities or list(feats.features)
    graph_hidden = p.model.graph_hidden
    use_mrl = p.mrl.enabled if use_mrl is None else use_mrl
    use_mkd = p.mkd.enabled if use_mkd is None else use_mkd
    return MGLRAConfig(
        input_dims={m: tuple(feats.features[m].shape[1:]) for m in modalities},
        n_speakers=int(feats.n_speakers),
        n_classes=len(feats.classes),
        hidden=p.model.hidden,
        graph_hidden=graph_hidden,
        input_dropout=p.model.input_dropout,
        **p.model.model_dump(include={"graph_layers", "attention_heads", "dropout", "mask_ratio", "av_lstm", "speaker",
                                      "speaker_init_std", "block_order", "faithful"}),
        nesting=nesting_sizes(p.mrl.nesting if use_mrl else [], 2 * graph_hidden),
        shared_head=p.mrl.shared if use_mrl else False,
        student_placement=p.mkd.placement if use_mkd else None,
    )


class Objective:
    """task(fused, summed or averaged over MRL sizes) + λ_ce Σ_m task(student_m, y) + λ_kd Σ_m T²·H(teacher_m, student_m)."""

    def __init__(self, task, mrl_weights=None, teacher_logits=None, lambda_ce=1.0, lambda_kd=1.0, temperature=1.0,
                 mrl_reduction="sum"):
        self.task, self.mrl_weights, self.mrl_reduction = task, mrl_weights, mrl_reduction
        self.teacher_logits = teacher_logits  # modality -> (N_all, C), or None without MKD
        self.lambda_ce, self.lambda_kd, self.temperature = lambda_ce, lambda_kd, temperature

    def to(self, device) -> "Objective":
        """The loss's buffers (class weights) and the teacher logits on ``device``, once for the whole run."""
        self.task.to(device)
        if self.teacher_logits is not None:
            self.teacher_logits = {m: z.to(device) for m, z in self.teacher_logits.items()}
        return self

    def __call__(self, output: dict, batch) -> torch.Tensor:
        keep = (batch.labels >= 0).nonzero().squeeze(1)  # labelled rows, found once; read by index_select
        target = batch.labels.index_select(0, keep)
        loss = matryoshka_loss(self.task, output["logits"].index_select(1, keep), target, self.mrl_weights,
                               self.mrl_reduction)
        if self.teacher_logits is not None and "student_logits" in output:
            utterances = batch.utterances.index_select(0, keep)
            for m, student in output["student_logits"].items():
                student = student.index_select(0, keep)
                loss = loss + self.lambda_ce * self.task(student, target)
                teacher = self.teacher_logits[m].index_select(0, utterances)
                loss = loss + self.lambda_kd * distillation_loss(student, teacher, self.temperature)
        return loss


def build_objective(params: Params, dataset: str, feats: FeatureFile, n_sizes: int, teacher_logits=None, use_mkd=None):
    p = params.for_dataset(dataset)
    train_labels = feats.labels[(torch.tensor([s == "train" for s in feats.splits])
                                    .repeat_interleave(feats.lengths))]
    train_labels = train_labels[train_labels >= 0]  # a corpus's unlabelled turns weigh nothing
    task = task_loss(p.train.loss, train_labels, len(feats.classes), p.train.focal_gamma)
    # MRL's size weights and reduction belong to the nested classifier only: teachers, the bc-LSTM and plain
    # MGLRA have one size (the schema checked one weight per nesting size)
    weights = p.mrl.weights if n_sizes > 1 else None
    reduction = p.mrl.reduction if n_sizes > 1 else "sum"
    use_mkd = p.mkd.enabled if use_mkd is None else use_mkd
    if not use_mkd:
        return Objective(task, weights, mrl_reduction=reduction)
    return Objective(task, weights, teacher_logits, p.mkd.lambda_ce, p.mkd.lambda_kd, p.mkd.temperature, reduction)



def validation_score(model, data, objective, device, classes, batch_size, split: str = "valid",
                     student: str | None = None) -> tuple:
    """Metrics and task loss of the full-size logits on ``split``'s labelled utterances (labels >= 0); with
    ``student`` (a modality), also those of that modality's student head: ((scores, loss), (scores, loss)).
    The loss is computed where the model and the objective live (``device``); only the predictions go to the host."""
    out = predict(model, data, split, device, batch_size)
    keep = out["labels"] >= 0
    labels = out["labels"][keep]

    def score(logits):
        loss = float(objective.task(logits[keep], labels))
        return classification_metrics(labels, logits[keep].argmax(-1), classes), loss
    if student is None:
        return score(out["logits"][-1])
    return score(out["logits"][-1]), score(out["student_logits"][student])



def fit(model, data: DialogueData, objective: Objective, schedule: Schedule, device, live=None,
        on_epoch=None) -> dict:
    """Train for ``schedule.epochs``; return the state with the best validation weighted F1 and the curves.

    With ``schedule.student``, that head's best validation epoch is returned too (``student_state``,
    ``student_epoch``), as a teacher's is; the fused model's selection is unchanged. With ``schedule.record``, the
    split's class probabilities after every epoch are returned (``recorded``: (epochs, N_split, C) float16;
    ``recorded_utterances``). The feature file hides test labels, so this is the paper's per-epoch test pass with
    nothing read that could choose (``evaluate`` scores it).

    ``on_epoch(model, epoch)``, if given, runs after each epoch's validation with the model in eval mode
    (benchmarks/probe.py scores a held-out session there); it must not draw random numbers."""
    s = schedule
    generator = seed_everything(s.seed)
    drop_generator = torch.Generator().manual_seed(10_000 + s.seed)
    device = torch.device(device)
    make_deterministic(device)
    model.to(device)
    objective.to(device)
    data = data.to(device)  # features, speakers and labels moved once; batches gather on the device
    fused = device.type in ("cpu", "cuda")  # the fused Adam kernel is ~8x faster than the default loop on CPU
    optimiser = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay, fused=fused)
    best_student, recorded, recorded_utterances = BestEpoch(), [], None
    eval_batch = eval_batch_size(model, s.batch_size)

    def one_epoch(epoch: int) -> tuple[dict, tuple]:
        nonlocal recorded_utterances
        model.train()
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0  # summed on the device: no sync a step
        for batch in data.batches("train", s.batch_size, shuffle=True, generator=generator):
            if s.modality_dropout:
                batch = drop_modalities(batch, s.modality_dropout, drop_generator, data.flagged,
                                        s.modality_dropout_unit)
            batch = batch.to(device)
            loss = objective(model(batch), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + loss.detach().double() * len(batch.lengths), count + len(batch.lengths)
        if s.student is None:
            scores, val_loss = validation_score(model, data, objective, device, data.classes, eval_batch)
        else:
            (scores, val_loss), (own, own_loss) = validation_score(model, data, objective, device, data.classes,
                                                                   eval_batch, student=s.student)
        row = {"epoch": epoch, "train_loss": float(total) / count, "valid_loss": val_loss,
               "valid_acc": scores["acc"], "valid_weighted_f1": scores["weighted_f1"]}
        if s.student is not None:
            row[f"valid_{s.student}_student_weighted_f1"] = own["weighted_f1"]
            best_student.offer((own["weighted_f1"], -own_loss), epoch, model)
        if s.record is not None:
            probs, recorded_utterances = split_probabilities(model, data, s.record, device, eval_batch)
            recorded.append(probs)
        if on_epoch is not None:
            on_epoch(model, epoch)
        return row, (scores["weighted_f1"], -val_loss)

    epochs = tqdm(range(1, s.epochs + 1), desc=s.desc, disable=not s.progress, unit="epoch")
    best, history = epoch_loop(model, epochs, one_epoch, live)
    result = {"state": best.state, "epoch": best.epoch, "history": history}
    if s.student is not None:
        result.update(student_state=best_student.state, student_epoch=best_student.epoch)
    if s.record is not None:
        result.update(recorded=torch.stack(recorded), recorded_utterances=recorded_utterances)
    return result
