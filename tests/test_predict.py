import json

import pytest
import torch

from erc.io import InputError
from erc.model import MGLRA
from erc.predict import predict_dialogue, read_dialogue
from erc.training import model_config


@pytest.fixture
def checkpoint():
    feats = {"features": {"text": torch.zeros(1, 4, 384), "audio": torch.zeros(1, 9)}, "n_speakers": 9,
             "classes": list(range(7))}
    import yaml
    from conftest import ROOT
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(hidden={"iemocap": 16, "meld": 16}, graph_hidden=8)
    config = model_config(feats, params, "meld")
    torch.manual_seed(0)
    return {"config": config, "runs": {0: {"state": MGLRA(**config).state_dict()}},
            "sources": {"text": "minilm", "audio": "praat", "visual": "none"}}


def write(tmp_path, obj):
    path = tmp_path / "d.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_prediction_per_turn_with_probabilities(tmp_path, checkpoint):
    turns = read_dialogue(write(tmp_path, [{"speaker": "Joey", "text": "How you doin'?"},
                                           {"speaker": "Rachel", "text": "Oh my God!", "audio": [0.1] * 8}]))
    out = predict_dialogue(turns, checkpoint, "meld")
    assert [o["speaker"] for o in out] == ["Joey", "Rachel"]
    for o in out:
        assert abs(sum(o["probabilities"].values()) - 1) < 1e-3
        assert o["emotion"] == max(o["probabilities"], key=o["probabilities"].get)


def test_bad_dialogues_get_clear_errors(tmp_path, checkpoint):
    with pytest.raises(InputError, match="not valid JSON"):
        read_dialogue(write(tmp_path, "[{"))
    with pytest.raises(InputError, match="non-empty list"):
        read_dialogue(write(tmp_path, []))
    with pytest.raises(InputError, match="turn 1 needs"):
        read_dialogue(write(tmp_path, [{"speaker": "a", "text": "x"}, {"text": "y"}]))
    crowd = [{"speaker": f"p{i}", "text": "hi"} for i in range(10)]
    with pytest.raises(InputError, match="10 distinct speakers, the model knows at most 9"):
        predict_dialogue(crowd, checkpoint, "meld")
    with pytest.raises(InputError, match="expected 8"):
        predict_dialogue([{"speaker": "a", "text": "x", "audio": [1.0]}], checkpoint, "meld")
