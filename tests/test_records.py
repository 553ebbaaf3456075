"""Per-epoch test records (erc.evaluation.records, fit(record=...)): recording changes nothing that is trained or chosen,
and what it records is the kept model's own test output."""
from __future__ import annotations

import pytest
import torch
from conftest import random_feats, small_config

from erc.data.batching import DialogueData
from erc.data.feature_file import save_features, load_features, utterance_split
from erc.data.graphs import build_graphs
from erc.models.mglra import MGLRA, restore
from erc.models.mrl import nesting_sizes
from erc.config.params import validate_params
from erc.evaluation.records import both_protocols, collect_records, epoch_scores, epochs_path, load_records, paper_epoch
from erc.training.references import BcLSTM, bclstm_input_dim
from erc.models.checkpoint import Checkpoint
from erc.training.loop import Schedule, build_objective, fit
from erc.models.predict import predict

EPOCHS = 4


@pytest.fixture
def hidden(tmp_path):
    """A toy feature file read back as a training stage reads it: test labels hidden."""
    lengths = [5, 3, 7, 4, 6, 2, 5, 4, 3, 6, 4, 5]
    splits = ["train"] * 6 + ["valid"] * 3 + ["test"] * 3
    feats = random_feats(lengths, splits)
    save_features(feats, tmp_path / "toy.pt")
    return load_features(tmp_path / "toy.pt"), build_graphs(lengths, 2), feats


def _fit(feats, graphs, record, faithful=False):
    params = validate_params({"mrl": {"enabled": True, "nesting": [2, 4]},
                              "mkd": {"enabled": True, "placement": "unimodal"}})
    config = small_config(feats, nesting=nesting_sizes([2, 4], 16), student_placement="unimodal",
                                faithful=faithful)
    torch.manual_seed(0)
    model = MGLRA(config)
    n = int(feats.lengths.sum())
    teacher_logits = {m: torch.randn(n, 3, generator=torch.Generator().manual_seed(1)) for m in feats.features}
    objective = build_objective(params, "iemocap", feats, len(config.nesting), teacher_logits)
    data = DialogueData(feats, graphs["multimodal"])
    result = fit(model, data, objective, Schedule(epochs=EPOCHS, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0,
                                                  progress=False, student="text", record=record), "cpu")
    return config, data, result


@pytest.mark.parametrize("faithful", [False, True])  # faithful: the released eval-time mask draws random numbers
def test_recording_changes_nothing_trained_or_chosen(hidden, faithful):
    feats, graphs, _ = hidden
    _, _, off = _fit(feats, graphs, None, faithful)
    _, _, on = _fit(feats, graphs, "test", faithful)
    assert set(on) - set(off) == {"recorded", "recorded_utterances"}
    assert on["epoch"] == off["epoch"] and on["student_epoch"] == off["student_epoch"]
    assert on["history"] == off["history"]  # every loss and score, bit for bit
    for key in ("state", "student_state"):
        assert on[key].keys() == off[key].keys()
        assert all(torch.equal(on[key][k], off[key][k]) for k in on[key])


def test_record_is_the_kept_models_test_output(hidden):
    feats, graphs, labelled = hidden
    config, data, result = _fit(feats, graphs, "test")
    probs, order = result["recorded"], result["recorded_utterances"]
    n_test = int((utterance_split(labelled) == 2).sum())
    assert probs.dtype == torch.float16 and probs.shape == (EPOCHS, n_test, 3)
    assert torch.allclose(probs.float().sum(-1), torch.ones(EPOCHS, n_test), atol=3e-3)
    out = predict(restore(config, result["state"], "cpu"), data, "test", "cpu")
    assert torch.equal(out["utterances"], order)
    expected = torch.softmax(out["logits"][-1], -1).to(torch.float16)
    assert torch.equal(probs[result["epoch"] - 1], expected)  # the kept epoch's record is the kept model's output
    assert not torch.equal(probs[0], probs[-1])  # a record per epoch, not one copy
    assert (feats.labels[order] == -1).all() and (labelled.labels[order] >= 0).all()  # hidden as recorded


def test_bclstm_recording_changes_nothing(hidden):
    feats, graphs, _ = hidden
    params = validate_params({})
    runs = []
    for record in (None, "test"):
        torch.manual_seed(0)
        model = BcLSTM(bclstm_input_dim(feats.features), feats.n_speakers, 3, hidden=8)
        objective = build_objective(params, "iemocap", feats, 1, use_mkd=False)
        schedule = Schedule(epochs=3, lr=1e-2, weight_decay=0.0, batch_size=3, seed=0, progress=False, record=record)
        runs.append(fit(model, DialogueData(feats, graphs["unimodal"]), objective, schedule, "cpu"))
    off, on = runs
    assert on["history"] == off["history"] and on["epoch"] == off["epoch"]
    assert all(torch.equal(on["state"][k], off["state"][k]) for k in on["state"])


def test_collect_records_leaves_the_stage_output_as_before(tmp_path):
    order = torch.tensor([7, 8, 9])
    runs = {s: {"state": {"w": torch.ones(1) * s}, "epoch": 2, "recorded": torch.full((2, 3, 4), float(s)),
                "recorded_utterances": order} for s in (0, 1)}
    record = collect_records(runs)
    assert all(set(r) == {"state", "epoch"} for r in runs.values())
    assert torch.equal(record["utterances"], order) and set(record["runs"]) == {0, 1}
    runs[0].update(recorded=torch.zeros(2, 3, 4), recorded_utterances=torch.tensor([9, 8, 7]))
    runs[1].update(recorded=torch.zeros(2, 3, 4), recorded_utterances=order)
    with pytest.raises(ValueError, match="another order"):
        collect_records(runs)


def test_load_records_checks_shapes(tmp_path):
    from erc.runtime.errors import InputError
    from erc.runtime.files import save_torch
    path = tmp_path / "m.epochs.pt"
    save_torch({"split": "test", "utterances": torch.arange(3), "runs": {0: torch.zeros(5, 3, 4)}}, path)
    assert load_records(str(path), 4)["runs"][0].shape == (5, 3, 4)
    with pytest.raises(InputError, match="run 0 is not an"):
        load_records(str(path), 6)
    assert epochs_path("models/iemocap.pt") == "models/iemocap.epochs.pt"


def test_epoch_scores_and_the_papers_pick():
    labels = torch.tensor([0, 1, 1, -1])  # the last utterance has no label: not scored
    probs = torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9]],   # epoch 1: 1 of 3 right
                          [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]],   # epoch 2: 2 of 3
                          [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]],   # epoch 3: all 3
                          [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]]])  # epoch 4: all 3 again
    scores = epoch_scores(probs.half(), labels, ["a", "b"])
    assert [round(s["acc"], 2) for s in scores] == [33.33, 66.67, 100.0, 100.0]
    assert paper_epoch(scores) == 3  # the first of the best, as the authors' strict-improvement logs keep


def test_both_protocols_known_answer():
    labels = torch.tensor([0, 1, 1, 0, 5])  # utterance 4 is outside the split, never read
    right = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    wrong = 1 - right
    record = {"split": "test", "utterances": torch.tensor([0, 1, 2, 3]),
              "runs": {0: torch.stack([wrong, right, wrong]).half(),          # test picks epoch 2 (100 %)
                       1: torch.stack([right, wrong, wrong]).half()}}         # test picks epoch 1 (100 %)
    report = both_protocols(record, labels, ["a", "b"], {0: 3, 1: 1})        # validation picked 3 and 1
    assert [r["test_picked_epoch"] for r in report["per_run"]] == [2, 1]
    assert report["test_picked"]["weighted_f1"] == {"mean": 100.0, "std": 0.0, "median": 100.0, "best": 100.0}
    assert report["validation_picked"]["acc"]["mean"] == 50.0  # 0 % and 100 %
    assert report["gap_weighted_f1"] == 50.0
    assert report["per_run"][0]["test_weighted_f1_by_epoch"] == [0.0, 100.0, 0.0]


def test_ensemble_of_one_seed_is_that_seed(hidden):
    from erc.evaluation.evaluate import evaluate_model
    _, graphs, labelled = hidden
    config, _, result = _fit(hidden[0], graphs, None)
    checkpoint = Checkpoint(config, {0: {"state": result["state"], "epoch": result["epoch"]}}, {}, "cpu", {}, {})
    metrics, _ = evaluate_model(checkpoint, labelled, graphs, "fused")
    for split in ("valid", "test"):
        assert metrics["ensemble"][split]["weighted_f1"] == metrics["per_seed"][0][split]["weighted_f1"]
    other = _fit(hidden[0], graphs, None, True)[2]["state"]  # another run's weights, same architecture
    two = Checkpoint(config, {0: checkpoint.runs[0], 1: {"state": other, "epoch": 1}}, {}, "cpu", {}, {})
    metrics, _ = evaluate_model(two, labelled, graphs, "fused")
    data = DialogueData(labelled, graphs["multimodal"])
    outs = [predict(restore(config, state, "cpu"), data, "test", "cpu") for state in (result["state"], other)]
    mean = sum(torch.softmax(o["logits"][-1].double(), -1) for o in outs) / 2
    from erc.evaluation.metrics import classification_metrics
    expected = classification_metrics(outs[0]["labels"], mean.argmax(-1), labelled.classes)
    assert metrics["ensemble"]["test"] == expected


def test_only_evaluate_and_reports_read_test_labels():
    """Test labels reach two places: the evaluate stage and the seed study's report (both choose nothing); every
    training path reads the feature file with them hidden (load_features' default)."""
    import ast
    from conftest import ROOT
    readers = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "hide_test_labels" and \
                    not (isinstance(node.value, ast.Constant) and node.value.value is True):
                readers.add(path.relative_to(ROOT).as_posix())
    assert readers == {"src/evaluate.py", "src/erc/reporting/seed_report.py"}
