"""The one epoch loop every trainer here runs (the model's ``fit``, which the teachers and the references use too,
and the text encoder's ``finetune``): each epoch trains and scores validation, its row goes to DVCLive, and the
state of the best validation epoch is kept and loaded back."""
from __future__ import annotations

from typing import Callable, Iterable

from erc.runtime.device import to_cpu


class BestEpoch:
    """The epoch whose ``key`` is highest (first of equals), with a CPU copy of the model's state at that epoch."""

    def __init__(self):
        self.key, self.epoch, self.state = None, None, None

    def offer(self, key: tuple, epoch: int, model) -> bool:
        """Keep ``model``'s state if ``key`` beats the best so far; True when it did."""
        if self.key is not None and not key > self.key:
            return False
        self.key, self.epoch, self.state = key, epoch, to_cpu(model.state_dict())
        return True


def log_epoch(live, row: dict) -> None:
    """One epoch's ``row`` (``epoch`` plus scalars) as DVCLive metrics, then the next step; nothing without ``live``."""
    if live is None:
        return
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def epoch_loop(model, epochs: Iterable[int], one_epoch: Callable[[int], tuple[dict, tuple]],
               live=None) -> tuple[BestEpoch, list[dict]]:
    """``one_epoch(epoch)`` trains one epoch and scores validation, returning the epoch's curve row and its
    selection key (higher is better); the rows are logged (``log_epoch``) and returned, and ``model`` ends holding
    the state of the best key's epoch. The trainer's own parts (steps, losses, what it records) live in
    ``one_epoch``."""
    best, history = BestEpoch(), []
    for epoch in epochs:
        row, key = one_epoch(epoch)
        history.append(row)
        log_epoch(live, row)
        best.offer(key, epoch, model)
    model.load_state_dict(best.state)
    return best, history
