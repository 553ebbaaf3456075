"""One device for every stage (params.yaml ``device``), and code that runs on CUDA as on the CPU.

No GPU here: what would break on one is caught on the CPU by making PyTorch's *default* device ``meta`` while the
data and the model sit on the CPU. A tensor that the loss, the model, the batcher or the fine-tuning creates without
following its inputs' device (``torch.arange(n)`` beside a CUDA tensor, the bug class behind the first CUDA run's
crash) then lands on ``meta``, and the first operation mixing it with a real tensor raises. The ``cuda`` tests run
where a GPU is (benchmarks/gpu_check.sh) and compare a CUDA run with the CPU's."""
import contextlib
import json

import pytest
import torch

from conftest import ROOT, random_feats, small_config
from erc.data.batching import DialogueData
from erc.data.datasets import CLASSES, load_dialogues
from erc.runtime.device import resolve_device, to_cpu
from erc.evaluation.evaluate import evaluate_model
from erc.training.finetune import FinetuneJob, finetune, settings_of
from erc.features.utterance_encoder import Inputs, base_encoder_dir, layer_features
from erc.data.graphs import build_graphs
from erc.runtime.errors import InputError
from erc.training.losses import task_loss
from erc.models.mglra import MGLRA
from erc.training.train import train_model
from erc.config.params import validate_params
from erc.training.loop import Objective, Schedule, fit
from erc.models.predict import predict_all

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@contextlib.contextmanager
def default_device_meta():
    """Tensors made without a device land on ``meta``: any of them meeting a real tensor raises."""
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def toy_data(n_classes=3):
    lengths = [5, 3, 7, 4, 6, 2, 5, 4, 3, 6]
    feats = random_feats(lengths, ["train"] * 6 + ["valid"] * 2 + ["test"] * 2, n_classes=n_classes)
    return feats, build_graphs(lengths, len(feats.features))


def test_auto_is_the_cpu_without_a_gpu_and_cuda_without_one_is_one_line():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(InputError, match="'device' is cuda, but PyTorch sees no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError, match="'device' should be"):
        validate_params({"device": "gpu"})


@pytest.mark.parametrize("loss", ["weighted_nll", "focal", "ce"])
def test_an_epoch_with_validation_creates_nothing_off_its_inputs_device(loss):
    # every dataset's loss (IEMOCAP: weighted_nll, whose class weights are a buffer; MELD: focal), MRL sizes, the
    # unimodal students with teacher logits, modality dropout, the text student's own selection: the whole of fit
    feats, graphs = toy_data()
    data = DialogueData(feats, graphs["multimodal"])
    model = MGLRA(small_config(feats, student_placement="unimodal", nesting=[4, 16]))
    teacher = {m: torch.randn(len(feats.labels), 3) for m in feats.features}
    objective = Objective(task_loss(loss, feats.labels, 3, 2.5), None, teacher)
    with default_device_meta():
        result = fit(model, data, objective, Schedule(epochs=2, lr=1e-3, weight_decay=0.0, batch_size=4, seed=0,
                                                      progress=False, modality_dropout=0.3, student="text"), "cpu")
        logits = predict_all(model, data, "cpu")
    assert len(result["history"]) == 2 and logits.shape == (len(feats.labels), 3)
    assert all(v.device.type == "cpu" for v in result["state"].values())


def test_the_old_padding_mask_is_caught():
    # what the check catches: the padding mask as it was built (on the default device, beside the data's)
    flat, lengths = torch.randn(5, 2), torch.tensor([3, 2])
    with default_device_meta(), pytest.raises((RuntimeError, NotImplementedError)):
        mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)
        flat.new_zeros(6, 2)[mask.flatten()] = flat


def test_evaluation_creates_nothing_off_its_inputs_device(tmp_path):
    feats, graphs = toy_data()
    params = validate_params({"model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 2},
                              "train": {"epochs": {"iemocap": 1, "meld": 1}, "seeds": [0]},
                              "mrl": {"nesting": [4]}, "mkd": {"enabled": False}, "workers": 1})
    feats.dataset = "iemocap"
    checkpoint = train_model("iemocap", feats, graphs, params, progress=False)
    teacher_logits = torch.randn(len(feats.labels), 3)
    with default_device_meta():
        metrics, predictions = evaluate_model(checkpoint, feats, graphs, "teacher", teacher_logits, "cpu")
    assert checkpoint.device == "cpu" and {"test", "text_only"} <= set(metrics)
    assert predictions[0][0].device.type == "cpu"


@pytest.fixture(scope="module")
def few_dialogues():
    keep = {"Ses03M_script03_1", "Ses03F_impro01", "Ses05M_script01_2"}
    return [d for d in load_dialogues("iemocap", ROOT / "data" / "raw") if d.id in keep]


def one_epoch_setup(dialogues, context: int):
    """Inputs, labels, train / valid rows and settings of a one-epoch MiniLM fine-tuning on ``dialogues``."""
    from transformers import AutoTokenizer
    inputs = Inputs(AutoTokenizer.from_pretrained(base_encoder_dir("minilm-ft")), dialogues, "iemocap",
                    context=context, max_length=48)
    labels = torch.tensor([y for d in dialogues for y in d.labels])
    split = [d.split for d in dialogues for _ in range(len(d))]
    train = [r for r, s in enumerate(split) if s == "train"]
    valid = [r for r, s in enumerate(split) if s == "valid"]
    p = validate_params({"features": {"text": "minilm-ft"}, "finetune": {"epochs": {"iemocap": 1, "meld": 1}}})
    return inputs, labels, train, valid, dict(settings_of(p, "iemocap"), batch_size=16)


def test_fine_tuning_and_feature_reading_create_nothing_off_the_encoders_device(few_dialogues):
    inputs, labels, train, valid, settings = one_epoch_setup(few_dialogues, context=1)
    with default_device_meta():
        result = finetune(FinetuneJob(base_encoder_dir("minilm-ft"), inputs, labels, train, valid, CLASSES["iemocap"],
                                      settings, progress=False, device="cpu"))
        features = layer_features(result["model"], inputs, valid)
    assert features.shape == (len(valid), 4, 384)


def test_kept_states_are_copies_that_training_does_not_move():
    # the state kept at the best epoch is a CPU copy: later epochs (and a CUDA model) never change it
    model = torch.nn.Linear(3, 2)
    kept = to_cpu(model.state_dict())
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(kept["weight"], model.weight)


def test_bf16_on_a_cpu_is_refused_before_any_work(few_dialogues):
    from erc.training.finetune import finetune_datasets
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: bf16 is allowed")
    p = validate_params({"features": {"text": "minilm-ft"}, "device": "cpu", "finetune": {"precision": "bf16"}})
    with pytest.raises(InputError, match="'finetune.precision' bf16 runs on CUDA only"):
        finetune_datasets({"iemocap": few_dialogues}, p, progress=False)


def test_the_table_keeps_runs_on_another_device_apart():
    from erc.reporting.runs import run_device
    assert run_device({"setup": {"device": {"train": "cpu", "evaluate": "cpu"}}}) == "cpu"
    assert run_device({"setup": {"device": {"train": "cuda", "evaluate": "cpu"}}}) == "cpu+cuda"
    assert run_device({"setup": {"sources": {}}}) == "cpu"  # made before the device was recorded: on the CPU


@CUDA
def test_cuda_training_and_evaluation_agree_with_the_cpu():
    feats, graphs = toy_data()
    feats.dataset = "iemocap"
    runs = {}
    for device in ("cpu", "cuda"):
        params = validate_params({"model": {"hidden": 16, "graph_hidden": 8, "graph_layers": 2, "dropout": 0.0,
                                            "mask_ratio": 0.0},
                                  "train": {"epochs": {"iemocap": 3, "meld": 3}, "seeds": [0]}, "device": device,
                                  "mrl": {"nesting": [4]}, "mkd": {"enabled": False}, "workers": 1})
        checkpoint = train_model("iemocap", feats, graphs, params, progress=False)
        assert checkpoint.device == device
        assert all(v.device.type == "cpu" for v in checkpoint.runs[0]["state"].values())  # saved on the CPU
        metrics, _ = evaluate_model(checkpoint, feats, graphs, "fused", None, device)
        runs[device] = (checkpoint, metrics)
    history = {d: [h["train_loss"] for h in runs[d][0].runs[0]["history"]] for d in runs}
    assert history["cpu"] == pytest.approx(history["cuda"], rel=1e-3)
    assert runs["cpu"][1]["test"]["weighted_f1"]["mean"] == pytest.approx(runs["cuda"][1]["test"]["weighted_f1"]["mean"],
                                                                          abs=5.0)


@CUDA
def test_cuda_fine_tuning_agrees_with_the_cpu(few_dialogues):
    inputs, labels, train, valid, settings = one_epoch_setup(few_dialogues, context=0)
    out = {}
    for device in ("cpu", "cuda"):
        result = finetune(FinetuneJob(base_encoder_dir("minilm-ft"), inputs, labels, train, valid, CLASSES["iemocap"],
                                      settings, progress=False, device=device))
        out[device] = result["history"][0]["train_loss"]
        assert all(v.device.type == "cpu" for v in result["model"].to("cpu").state_dict().values())
    assert out["cpu"] == pytest.approx(out["cuda"], rel=0.1)  # dropout draws differ between devices' generators


def test_metrics_of_the_committed_run_record_the_device():
    for dataset in ("iemocap", "meld"):
        setup = json.loads((ROOT / "metrics" / "details" / f"{dataset}.json").read_text())["setup"]
        assert set(setup["device"]) >= {"train", "teachers", "references", "evaluate", "extract"}
        assert set(setup["device"].values()) <= {"cpu", "cuda"}
