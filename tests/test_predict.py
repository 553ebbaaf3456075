import json

import pytest
import torch

from conftest import shapes_only
from erc.runtime.errors import InputError
from erc.data.feature_file import FeatureFile
from erc.models.checkpoint import Checkpoint
from erc.models.mglra import MGLRA
from erc.models.inference import Serving, format_table, predict_dialogue, read_dialogue
from erc.config.params import Params, load_params
from erc.training.loop import model_config


def narrow_params() -> Params:
    """params.yaml with a tiny model, unchecked (narrower than the nesting sizes: ``nesting_sizes`` keeps those
    below the block)."""
    from conftest import ROOT
    params = load_params(ROOT / "params.yaml")
    return params.model_copy(update={"model": params.model.model_copy(update={"hidden": 16, "graph_hidden": 8})})


@pytest.fixture
def checkpoint():
    feats = shapes_only({"text": torch.zeros(1, 4, 384), "audio": torch.zeros(1, 9)}, 9, range(7))
    params = narrow_params()
    config = model_config(feats, params, "meld")
    torch.manual_seed(0)
    return Checkpoint(config, {0: {"state": MGLRA(config).state_dict()}},
                      {"text": "minilm", "audio": "praat", "visual": "none"}, "cpu", {}, {})


def write(tmp_path, obj):
    path = tmp_path / "d.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_prediction_per_turn_with_probabilities(tmp_path, checkpoint):
    turns = read_dialogue(write(tmp_path, [{"speaker": "Joey", "text": "How you doin'?"},
                                           {"speaker": "Rachel", "text": "Oh my God!", "audio": [0.1] * 8}]))
    out = predict_dialogue(turns, checkpoint, "meld")
    assert [o["speaker"] for o in out] == ["Joey", "Rachel"]
    # the ensemble's probabilities are the mean of the seeds' own (each a distribution over the classes)
    single = [predict_dialogue(turns, checkpoint, "meld", seed=s) for s in checkpoint.runs]
    for k, o in enumerate(out):
        for c, p in o["probabilities"].items():
            assert p == pytest.approx(sum(run[k]["probabilities"][c] for run in single) / len(single), abs=2e-4)
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


def test_seeds_are_averaged_by_default_and_one_seed_on_request(tmp_path, checkpoint):
    torch.manual_seed(1)
    checkpoint.runs[3] = {"state": MGLRA(checkpoint.config).state_dict()}  # a second, different seed
    turns = [{"speaker": "Joey", "text": "How you doin'?"}, {"speaker": "Rachel", "text": "Oh my God!"}]
    one, other = (predict_dialogue(turns, checkpoint, "meld", seed=s) for s in (0, 3))
    both = predict_dialogue(turns, checkpoint, "meld")
    for a, b, mean in zip(one, other, both):
        assert a["probabilities"] != b["probabilities"]
        for c in mean["probabilities"]:
            assert abs(mean["probabilities"][c] - (a["probabilities"][c] + b["probabilities"][c]) / 2) < 1e-3
    with pytest.raises(InputError, match="--seed 7: the checkpoint holds seeds \\[0, 3\\]"):
        predict_dialogue(turns, checkpoint, "meld", seed=7)


def test_table_format_has_one_row_per_turn_with_the_emotion_and_its_probability():
    predictions = [{"speaker": "M", "text": "I've been waiting three hours.", "emotion": "ang",
                    "probabilities": {"ang": 0.61, "neu": 0.39}},
                   {"speaker": "F", "text": "x" * 80, "emotion": "neu", "probabilities": {"ang": 0.2, "neu": 0.8}}]
    lines = format_table(predictions, width=40).splitlines()
    assert lines[0].split() == ["turn", "speaker", "emotion", "confidence", "text"]
    assert lines[1].split()[:4] == ["0", "M", "ang", "0.61"] and lines[1].endswith("I've been waiting three hours.")
    assert lines[2].split()[:4] == ["1", "F", "neu", "0.80"] and lines[2].endswith("x" * 39 + "…")
    assert len({line.index(line.split()[2]) for line in lines}) == 1  # the emotion column is aligned


def test_a_dialogue_without_audio_is_answered_by_the_text_student_when_asked(checkpoint):
    assert checkpoint.config.student_placement == "unimodal"  # the committed params
    turns = [{"speaker": "Joey", "text": "How you doin'?"}, {"speaker": "Rachel", "text": "Oh my God!"}]
    fused = predict_dialogue(turns, checkpoint, "meld")
    student = predict_dialogue(turns, checkpoint, "meld", Serving(text_only="student"))
    assert fused != student
    # by hand: the ensemble of one seed is the softmax of the model's text student logits
    from erc.data.batching import DialogueData
    from erc.data.graphs import dialogue_graph
    from erc.models.inference import dialogue_features
    feats = FeatureFile("meld", list(range(7)), 9, ["d"], ["test"], torch.tensor([2]), torch.tensor([0, 1]),
                           torch.full((2,), -1), dialogue_features(turns, checkpoint.config.input_dims,
                                                                   checkpoint.sources, "d", "meld", [0, 1]))
    batch = DialogueData(feats, [dialogue_graph(2, 2, -1, -1)], ["text", "audio"]).make_batch([0])
    model = MGLRA(checkpoint.config).eval()
    model.load_state_dict(checkpoint.runs[0]["state"])
    with torch.no_grad():
        expected = torch.softmax(model(batch)["student_logits"]["text"], -1)
    for row, p in zip(student, expected):
        assert all(abs(row["probabilities"][c] - float(v)) < 1e-4 for c, v in zip(row["probabilities"], p))
    # one turn with audio: the dialogue is no longer text-only, and the fused output answers
    turns[1]["audio"] = [0.1] * 8
    assert predict_dialogue(turns, checkpoint, "meld", Serving(text_only="student")) == predict_dialogue(turns, checkpoint, "meld")


def test_a_dialogue_without_audio_is_answered_by_the_text_teacher_or_the_mean_when_asked(tmp_path, checkpoint):
    from erc.data.batching import DialogueData
    from erc.data.graphs import dialogue_graph
    from erc.models.inference import dialogue_features
    params = narrow_params()
    feats = shapes_only({"text": torch.zeros(1, 4, 384), "audio": torch.zeros(1, 9)}, 9, range(7))
    config = model_config(feats, params, "meld", modalities=["text"], use_mrl=False, use_mkd=False)
    torch.manual_seed(5)
    teacher = {"config": config.as_dict(), "state": MGLRA(config).state_dict()}
    turns = [{"speaker": "Joey", "text": "How you doin'?"}, {"speaker": "Rachel", "text": "Oh my God!"}]
    # by hand: the teacher's softmax on the text of the dialogue (its own one-modality graph) and the student's
    text = FeatureFile("meld", list(range(7)), 9, ["d"], ["test"], torch.tensor([2]), torch.tensor([0, 1]),
                          torch.full((2,), -1), dialogue_features(turns, checkpoint.config.input_dims,
                                                                  checkpoint.sources, "d", "meld", [0, 1]))
    model = MGLRA(config).eval()
    model.load_state_dict(teacher["state"])
    student = MGLRA(checkpoint.config).eval()
    student.load_state_dict(checkpoint.runs[0]["state"])
    with torch.no_grad():
        p_teacher = torch.softmax(model(DialogueData(text, [dialogue_graph(2, 1)], ["text"]).make_batch([0]))
                                  ["logits"][-1], -1)
        p_student = torch.softmax(student(DialogueData(text, [dialogue_graph(2, 2)], ["text", "audio"])
                                          .make_batch([0]))["student_logits"]["text"], -1)
    for answer, expected in (("teacher", p_teacher), ("student+teacher", (p_teacher + p_student) / 2)):
        rows = predict_dialogue(turns, checkpoint, "meld", Serving(text_only=answer, teacher=teacher))
        for row, p in zip(rows, expected):
            assert all(abs(row["probabilities"][c] - float(v)) < 1e-4 for c, v in zip(row["probabilities"], p))
    with pytest.raises(InputError, match="needs the text teacher"):
        predict_dialogue(turns, checkpoint, "meld", Serving(text_only="teacher"))
    # a turn with audio: the fused output answers, the teacher is not asked
    turns[1]["audio"] = [0.1] * 8
    assert predict_dialogue(turns, checkpoint, "meld", Serving(text_only="teacher")) == predict_dialogue(turns, checkpoint, "meld")
