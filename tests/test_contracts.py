"""The typed contracts between stages (docs/layout.md): the feature file and the checkpoint load, validate and save
themselves as plain dicts; the one epoch loop keeps the best validation epoch."""
import pytest
import torch

from conftest import random_feats, small_config
from erc.data.feature_file import ORDER, FeatureFile
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import MGLRA, MGLRAConfig
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch
from erc.training.loop import Schedule
from erc.training.selection import epoch_loop


def test_a_feature_file_saves_a_plain_dict_in_extractions_order_and_loads_back(tmp_path):
    feats = random_feats([3, 2, 4], ["train", "valid", "test"]).but(audio_scaling={"columns": ["f0"]})
    feats.save(tmp_path / "f.pt")
    stored = load_torch(tmp_path / "f.pt", "feature file")  # weights_only: a plain dict, no class of ours
    assert type(stored) is dict and list(stored) == [k for k in ORDER if k not in ("corpus",)]
    back = FeatureFile.load(tmp_path / "f.pt", hide_test_labels=False)
    assert torch.equal(back.labels, feats.labels) and back.dialogue_ids == feats.dialogue_ids
    assert back.audio_scaling == {"columns": ["f0"]} and back.corpus is None
    hidden = FeatureFile.load(tmp_path / "f.pt")  # the training stages' view: only the test dialogue's labels go
    assert (hidden.labels[5:] == -1).all() and torch.equal(hidden.labels[:5], feats.labels[:5])


def test_a_feature_file_with_an_unknown_missing_or_disagreeing_entry_is_refused(tmp_path):
    stored = random_feats([2, 2], ["train", "test"]).as_dict()
    with pytest.raises(InputError, match=r"unknown feature file entries \['extra'\]"):
        FeatureFile.from_dict({**stored, "extra": 1}, "f.pt")
    with pytest.raises(InputError, match=r"missing keys \['speakers'\]"):
        FeatureFile.from_dict({k: v for k, v in stored.items() if k != "speakers"}, "f.pt")
    with pytest.raises(InputError, match="'speakers' has 3 rows, the dialogues hold 4 utterances"):
        FeatureFile.from_dict({**stored, "speakers": torch.zeros(3, dtype=torch.long)}, "f.pt")


def test_a_checkpoint_round_trips_and_refuses_a_config_it_does_not_know(tmp_path, toy):
    config = small_config(toy[0], nesting=[4, 16], student_placement="unimodal")
    state = MGLRA(config).state_dict()
    Checkpoint(config, {0: {"state": state, "epoch": 3}}, {"text": "random"}, "cpu", {"enabled": True}, {}).save(
        tmp_path / "m.pt")
    assert type(load_torch(tmp_path / "m.pt", "model checkpoint")["config"]) is dict  # on disk: plain
    back = Checkpoint.load(tmp_path / "m.pt")
    assert back.config == config and back.runs[0]["epoch"] == 3 and back.mrl == {"enabled": True}
    MGLRA(back.config).load_state_dict(back.runs[0]["state"])  # the config rebuilds the same network
    with pytest.raises(InputError, match=r"m.pt: model config has unknown entries \['width'\]"):
        MGLRAConfig.from_dict({**config.as_dict(), "width": 3}, "m.pt")
    with pytest.raises(InputError, match="holds no run"):
        Checkpoint.from_dict({"config": config.as_dict(), "runs": {}, "sources": {}}, "m.pt")


def test_the_epoch_loop_keeps_the_first_best_epoch_and_logs_every_row():
    model = torch.nn.Linear(1, 1, bias=False)
    keys = {1: (50.0, -1.0), 2: (70.0, -2.0), 3: (70.0, -2.0), 4: (60.0, 0.0)}  # epoch 3 ties epoch 2: not better

    def one_epoch(epoch):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # "training" leaves the epoch's number in the weights
        return {"epoch": epoch, "valid_weighted_f1": keys[epoch][0]}, keys[epoch]

    class Live:
        def __init__(self):
            self.rows, self.steps = [], 0

        def log_metric(self, key, value):
            self.rows.append((self.steps, key, value))

        def next_step(self):
            self.steps += 1

    live = Live()
    best, history = epoch_loop(model, range(1, 5), one_epoch, live)
    assert best.epoch == 2 and float(model.weight.detach()) == 2.0  # the kept state is loaded back
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert live.rows == [(k, "valid_weighted_f1", keys[k + 1][0]) for k in range(4)] and live.steps == 4


def test_a_schedule_changed_for_one_run_keeps_the_rest():
    base = Schedule(epochs=5, lr=1e-3, weight_decay=0.0, batch_size=16)
    run = base.but(seed=3, record="test")
    assert (run.epochs, run.lr, run.batch_size, run.seed, run.record) == (5, 1e-3, 16, 3, "test")
    assert base.seed == 0 and base.record is None  # the base is not changed
