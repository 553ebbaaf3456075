"""Stage train_references' work: two references on the same features, selected on validation like the model: a
context-free logistic regression on each utterance's own features, and a bc-LSTM (Poria et al., 2017), one per seed.

Features are read with the test labels hidden; only ``erc.evaluation.evaluate`` sees them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from erc.data.batching import DialogueData
from erc.runtime.device import stage_device
from erc.data.feature_file import FeatureFile, utterance_split
from erc.runtime.parallel import run_parallel
from erc.models.layers import Dropout, bidirectional_lstm
from erc.config.params import Params
from erc.training.loop import Schedule, build_objective, fit, seed_everything, seeds, train_settings
from erc.models.predict import predict_all


def utterance_vectors(features: dict) -> torch.Tensor:
    """One flat vector per utterance: the mean of the text layers, then audio and visual."""
    parts = [features[m].mean(1) if m == "text" else features[m] for m in ("text", "audio", "visual") if m in features]
    return torch.cat(parts, dim=1)


def logistic_regression(feats: FeatureFile, grid: list[float], seed: int = 0) -> dict:
    """Fit on train for each C, keep the best validation weighted F1; return logits of every utterance. On one BLAS /
    OpenMP thread, as every unit of work here runs (``erc.runtime.parallel``): with the machine's thread count its
    logits moved in the fifth decimal from one machine to another."""
    with threadpool_limits(limits=1):
        return _logistic_regression(feats, grid, seed)


def _logistic_regression(feats: FeatureFile, grid: list[float], seed: int) -> dict:
    x = utterance_vectors(feats.features).numpy()
    split, y = utterance_split(feats).numpy(), feats.labels.numpy()
    split = np.where(y >= 0, split, -1)  # unlabelled turns (a corpus's, hidden test labels) fit and choose nothing
    scaler = StandardScaler().fit(x[split == 0])
    x = scaler.transform(x)
    best = None
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
        clf.fit(x[split == 0], y[split == 0])
        score = f1_score(y[split == 1], clf.predict(x[split == 1]), average="weighted")
        if best is None or score > best[0]:
            best = (score, c, clf)
    return {"C": best[1], "logits": torch.from_numpy(best[2].decision_function(x)).float()}


class BcLSTM(nn.Module):
    """BiLSTM over a dialogue's utterance features with the speaker one-hot appended, then a linear classifier."""

    def __init__(self, input_dim: int, n_speakers: int, n_classes: int, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        self.n_speakers = n_speakers
        self.norm = nn.BatchNorm1d(input_dim)
        self.lstm = nn.LSTM(input_dim + n_speakers, hidden, batch_first=True, bidirectional=True)
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, n_classes)

    def forward(self, batch) -> dict:
        x = self.norm(utterance_vectors(batch.features))
        x = torch.cat([x, nn.functional.one_hot(batch.speakers, self.n_speakers).float()], dim=1)
        padding = batch.padding
        out = padding.unpad(bidirectional_lstm(self.lstm, padding.pad(self.dropout(x)), padding))
        return {"logits": self.classifier(self.dropout(out)).unsqueeze(0)}  # (1 size, N, C)


def bclstm_input_dim(features: dict) -> int:
    return int(utterance_vectors({m: t[:1] for m, t in features.items()}).shape[1])


def bclstm_settings(params: Params, dataset: str) -> Schedule:
    """``fit``'s schedule for the bc-LSTM: the model's settings (same epochs, batches and selection rule, so the
    same budget of steps and validation checks) with the reference's own learning rate."""
    return train_settings(params, dataset).but(lr=params.references.bclstm_lr)


def bclstm_model(feats: FeatureFile, params: Params) -> BcLSTM:
    return BcLSTM(bclstm_input_dim(feats.features), feats.n_speakers, len(feats.classes),
                  params.references.bclstm_hidden, params.model.dropout)


@dataclass
class BcLSTMJob:
    """One seed of the bc-LSTM reference (a unit of ``erc.runtime.parallel``)."""
    dataset: str
    feats: FeatureFile
    data: DialogueData
    params: Params
    device: torch.device
    schedule: Schedule  # with the seed


def _bclstm_seed(job: BcLSTMJob) -> dict:
    """One seed of the bc-LSTM reference: its selected epoch and every utterance's logits."""
    seed_everything(job.schedule.seed)
    model = bclstm_model(job.feats, job.params)
    objective = build_objective(job.params, job.dataset, job.feats, 1, use_mkd=False)
    result = fit(model, job.data, objective, job.schedule, job.device)
    return {"epoch": result["epoch"], "logits": predict_all(model, job.data, job.device),
            "recorded": result["recorded"], "recorded_utterances": result["recorded_utterances"]}  # erc.evaluation.records


def train_references(dataset: str, feats: FeatureFile, graphs: dict, params: Params, progress=True) -> dict:
    """Logits of every utterance from the logistic regression and from one bc-LSTM per seed."""
    device = stage_device(params)
    schedule = bclstm_settings(params, dataset).but(progress=progress, record="test")
    logreg = logistic_regression(feats, params.references.logreg_C)
    data = DialogueData(feats, graphs["unimodal"])
    jobs = {seed: BcLSTMJob(dataset, feats, data, params, device,
                            schedule.but(seed=seed, desc=f"{dataset} bc-LSTM seed {seed}")) for seed in seeds(params)}
    bclstm = run_parallel(_bclstm_seed, jobs, params.workers)
    return {"logreg": logreg, "bc_lstm": bclstm, "device": device.type}
