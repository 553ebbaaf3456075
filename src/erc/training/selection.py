"""What every training loop here shares (the model's ``fit``, the teachers', the references', the text encoder's
``finetune``): keep the state of the best validation epoch, and log each epoch's row to DVCLive."""
from __future__ import annotations

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
