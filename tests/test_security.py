"""Loading a file never runs its code, and every bad input or disk fault is one line (issue 42, docs/security.md):
malicious checkpoints and pickles are refused before their payload runs (the marker file it would make never
appears), text is checked where it enters, disk faults name the path, a killed stage leaves no partial curves, and
predict.py bounds what a dialogue file may ask for."""
import errno
import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import build_graphs
import predict
from conftest import RAW, ROOT
from erc.data.card import Card
from erc.data.corpus import read_corpus
from erc.data.datasets import load_dialogues
from erc.data.feature_pickles import read_feature_file
from erc.data.feature_file import save_features
from erc.models.inference import MAX_TEXT_CHARS, MAX_TURNS, read_dialogue
from erc.runtime.errors import InputError, run_stage
from erc.runtime.files import load_pickle, load_torch, save_torch
from erc.runtime.live import SharedLive, staged_curves
from erc.training.train import train_model
from erc.config.params import validate_params
from erc.training.references import train_references
from erc.training.teachers import train_teachers
from test_bad_input import assert_one_line_error, project, run_command, run_script, tiny_checkpoint


class Shell:
    """Unpickled, runs ``os.system(command)``: what a hostile file would hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Exec:
    """Unpickled, runs ``exec(code)`` (builtins.exec, another way in)."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def payloads(marker):
    return [Shell(f"touch {marker}"), Exec(f"open({str(marker)!r}, 'w').close()")]


def test_the_payloads_are_live_when_unpickled_without_the_guard(tmp_path):
    """What the refusals below protect against: plain unpickling of the same bytes does make the marker."""
    for k, payload in enumerate(payloads(tmp_path / "marker")):
        pickle.loads(pickle.dumps({"config": payload}))
        assert (tmp_path / "marker").exists(), k
        (tmp_path / "marker").unlink()


# ---------------------------------------------------------------- 1. checkpoints and every .pt the pipeline writes
def tiny_params():
    return validate_params({"workers": 1, "model": {"hidden": 8, "graph_hidden": 8, "graph_layers": 1},
                            "train": {"epochs": 1, "seeds": [0]}, "mrl": {"nesting": [4]},
                            "references": {"logreg_C": [1.0]}})


def test_every_file_the_pipeline_writes_loads_with_weights_only(tmp_path, toy):
    """Features, graphs (PyG Data), teachers, checkpoints and references, made by the stages' own code and writer."""
    feats, graphs = toy
    params = tiny_params()
    teachers = train_teachers("iemocap", feats, graphs, params, progress=False)
    outputs = {"graph file": graphs, "teacher file": teachers,
               "model checkpoint": train_model("iemocap", feats, graphs, params,
                                               {m: t["logits"] for m, t in teachers.items()}, progress=False).as_dict(),
               "reference file": train_references("iemocap", feats, graphs, params, progress=False)}
    save_features(feats.but(audio_scaling={"columns": ["f0"], "median": [1.0], "mean": [0.0], "std": [1.0]}),
                  tmp_path / "features.pt")
    assert torch.equal(load_torch(tmp_path / "features.pt", "feature file")["features"]["text"],
                       feats.features["text"])
    for k, (what, obj) in enumerate(outputs.items()):
        save_torch(obj, tmp_path / f"{k}.pt")
        again = load_torch(tmp_path / f"{k}.pt", what)
        assert set(again) == set(obj), what
    again = load_torch(tmp_path / "0.pt", "graph file")["multimodal"][0]
    assert torch.equal(again.edge_index, graphs["multimodal"][0].edge_index)


@pytest.mark.parametrize("payload", [0, 1])
def test_a_malicious_checkpoint_is_refused_before_its_code_runs(tmp_path, monkeypatch, payload):
    cwd = project(tmp_path)
    tiny_checkpoint(cwd / "models" / "meld.pt")
    marker = tmp_path / "marker"
    checkpoint = torch.load(cwd / "models" / "meld.pt", weights_only=True)
    checkpoint["runs"][0]["history"] = [payloads(marker)[payload]]  # deep inside an otherwise real checkpoint
    save_torch(checkpoint, cwd / "models" / "meld.pt")
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}]))
    message = predict_exit(monkeypatch, cwd, "d.json", "--dataset", "meld")
    assert message.startswith("error: models/meld.pt: model checkpoint (run dvc repro first) names ")
    assert ("posix.system" if payload == 0 else "builtins.exec") in message and "refused unread" in message
    assert not marker.exists()


def test_a_malicious_graph_file_is_refused_by_the_stage_that_reads_it(tmp_path, toy):
    feats, graphs = toy
    marker = tmp_path / "marker"
    save_torch({**graphs, "multimodal": [payloads(marker)[0]]}, tmp_path / "graphs.pt")
    with pytest.raises(InputError, match=r"graphs.pt: graph file names posix.system, .* refused unread"):
        load_torch(tmp_path / "graphs.pt", "graph file")
    assert not marker.exists()


def test_predict_py_refuses_a_malicious_checkpoint_as_a_command(tmp_path):
    """The issue's case, through the command line: one line, exit 1, no traceback, and no marker."""
    cwd = project(tmp_path)
    marker = tmp_path / "marker"
    save_torch({"config": {}, "runs": {0: Shell(f"touch {marker}")}, "sources": {}}, cwd / "models" / "meld.pt")
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}]))
    assert_one_line_error(run_command("predict.py", "d.json", "--dataset", "meld", cwd=cwd), "models/meld.pt",
                          "posix.system", "refused unread")
    assert not marker.exists()


# ---------------------------------------------------------------- 2. pickles
def test_the_shipped_metadata_pickles_load_through_the_allow_list():
    for name in ("iemocap.pkl", "meld.pkl"):
        with open(RAW / name, "rb") as f:
            assert load_pickle(RAW / name, "metadata pickle") == pickle.load(f)
    assert len(load_dialogues("meld", RAW)) == 1432


def test_a_malicious_feature_pickle_is_refused_naming_file_and_type(tmp_path):
    marker = tmp_path / "marker"
    speakers = {"d1": ["M", "F"]}
    arrays = {"d1": np.zeros((2, 4), np.float32)}
    fields = [{"d1": ["a", "b"]}, speakers, {"d1": [0, 1]}, arrays, arrays, arrays, {"d1": ["x", "y"]}, ["d1"], []]
    with open(tmp_path / "IEMOCAP_features.pkl", "wb") as f:  # DialogueGCN's layout, as Python 2 wrote it
        pickle.dump(fields, f, protocol=2)
    features, labels = read_feature_file(tmp_path / "IEMOCAP_features.pkl", "audio", "iemocap")
    assert features["d1"].shape == (2, 4) and labels == {"d1": [0, 1]}  # numpy arrays are allowed
    for k, payload in enumerate(payloads(marker)):
        fields[4] = {"d1": payload}
        with open(tmp_path / "IEMOCAP_features.pkl", "wb") as f:
            pickle.dump(fields, f, protocol=2 if k else pickle.DEFAULT_PROTOCOL)
        with pytest.raises(InputError) as err:
            read_feature_file(tmp_path / "IEMOCAP_features.pkl", "audio", "iemocap")
        assert str(err.value) == (f"{tmp_path / 'IEMOCAP_features.pkl'}: feature file names "
                                  f"{'posix.system' if k == 0 else 'builtins.exec'}, which its layout never uses; "
                                  "refused unread (loading it could run code)")
        assert not marker.exists()


def test_a_malicious_metadata_pickle_is_refused_by_the_stage(tmp_path):
    cwd = project(tmp_path)
    (cwd / "data" / "raw").mkdir(parents=True)
    marker = tmp_path / "marker"
    with open(cwd / "data" / "raw" / "iemocap.pkl", "wb") as f:
        pickle.dump([payloads(marker)[0], {}, {}, [], [], []], f)
    assert_one_line_error(run_script("extract_features.py", "iemocap", cwd=cwd), "data/raw/iemocap.pkl",
                          "posix.system", "refused unread")
    assert not marker.exists() and not (cwd / "data" / "features").exists()


# ---------------------------------------------------------------- 3. text, where it enters
CARD = Card("mine", ["happy", "sad"])


def corpus_rows(text_of_row_3):
    rows = [{"dialogue": f"d{k // 2}", "speaker": "A" if k % 2 else "B", "text": "fine", "label": "happy",
             "split": ["train", "valid", "test"][k // 2 % 3]} for k in range(6)]
    rows[2]["text"] = text_of_row_3
    return rows


@pytest.mark.parametrize("value, message", [
    ("oh \ud83d no", "'text' holds U+D83D at character 3, a lone surrogate (not valid Unicode)"),
    ("   ", "empty text"),
    (7, "'text' must be a string, got int"),
    (["hi"], "'text' must be a string, got list"),
])
def test_the_corpus_reader_refuses_bad_text_naming_the_row(tmp_path, value, message):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in corpus_rows(value)))  # json escapes the surrogate
    with pytest.raises(InputError) as err:
        read_corpus(path, CARD, check_wav=False)
    assert str(err.value) == f"{path}: row 3: {message}"


def test_a_lone_surrogate_in_any_corpus_column_is_refused(tmp_path):
    rows = corpus_rows("fine")
    rows[3]["speaker"] = "\udc00"
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    with pytest.raises(InputError, match=r"row 4: 'speaker' holds U\+DC00"):
        read_corpus(path, CARD, check_wav=False)


def predict_exit(monkeypatch, cwd, *args) -> str:
    """predict.py's main() run here, in ``cwd``: the message it exits with (it must exit)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["predict.py", *args])
    with pytest.raises(SystemExit) as exit_:
        predict.main()
    return str(exit_.value.code)


@pytest.mark.parametrize("turn, message", [
    ({"speaker": "Joey", "text": "Hi \ud83d"}, "d.json: turn 1: 'text' holds U+D83D at character 3, a lone surrogate"),
    ({"speaker": "Joey", "text": ""}, "d.json: turn 1: empty text"),
    ({"speaker": "Joey", "text": 5}, "d.json: turn 1: 'text' must be a string, got int"),
    ({"speaker": "\ud83d", "text": "Hi."}, "d.json: turn 1: 'speaker' holds U+D83D"),
    ({"speaker": "Joey", "text": "x" * (MAX_TEXT_CHARS + 1)},
     f"d.json: turn 1: 'text' has {MAX_TEXT_CHARS + 1} characters, at most {MAX_TEXT_CHARS}"),
])
def test_predict_refuses_bad_text_naming_the_turn(tmp_path, monkeypatch, turn, message):
    cwd = project(tmp_path)
    tiny_checkpoint(cwd / "models" / "meld.pt")
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Ross", "text": "Hey."}, turn]))
    assert predict_exit(monkeypatch, cwd, "d.json", "--dataset", "meld").startswith(f"error: {message}")


# ---------------------------------------------------------------- 4. disk faults
def feature_project(tmp_path, toy):
    cwd = project(tmp_path)
    save_features(toy[0].but(dataset="iemocap"), cwd / "data" / "features" / "iemocap.pt")
    return cwd


def run_build_graphs(monkeypatch, cwd) -> str:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["build_graphs.py", "iemocap"])
    with pytest.raises(SystemExit) as exit_:
        run_stage(build_graphs.main)
    return str(exit_.value.code)


def test_a_full_disk_is_one_line_naming_the_output_and_nothing_is_half_written(tmp_path, monkeypatch, toy):
    cwd = feature_project(tmp_path, toy)
    real_open = open

    def full_disk(file, mode="r", *args, **kwargs):  # the kernel's own ENOSPC: every write to /dev/full fails
        return real_open("/dev/full", mode, *args, **kwargs) if "w" in mode else real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr("erc.runtime.files.open", full_disk, raising=False)
    assert run_build_graphs(monkeypatch, cwd) == "error: data/graphs/iemocap.pt: No space left on device"
    assert list((cwd / "data" / "graphs").iterdir()) == []  # no graph file, no temporary


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_or_forbidden_folder_is_one_line_naming_it(tmp_path, monkeypatch, toy, code):
    cwd = feature_project(tmp_path, toy)

    def refused(dir=None, **kwargs):  # as root, chmod cannot stage these: the error the OS would give
        raise OSError(code, os.strerror(code), dir)
    monkeypatch.setattr("erc.runtime.files.tempfile.mkstemp", refused)
    assert run_build_graphs(monkeypatch, cwd) == f"error: data/graphs: {os.strerror(code)}"
    assert not (cwd / "data" / "graphs" / "iemocap.pt").exists()


def test_predict_names_an_unreadable_file(tmp_path, monkeypatch):
    cwd = project(tmp_path)
    tiny_checkpoint(cwd / "models" / "meld.pt")
    # a file whose reading fails in the kernel (EIO), and a params.yaml the user may not read
    assert predict_exit(monkeypatch, cwd, "/proc/self/mem", "--dataset", "meld") == \
        "error: /proc/self/mem: unreadable (Input/output error)"

    def forbidden(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "params.yaml")
    monkeypatch.setattr(predict, "load_params", forbidden)
    assert predict_exit(monkeypatch, cwd, "d.json") == "error: params.yaml: Permission denied"


# ---------------------------------------------------------------- 5. DVCLive curves of a killed run
KILLED_RUN = """
import os, signal, sys
from erc.runtime.live import staged_curves
with staged_curves("plots/train/iemocap") as factory:
    live = factory("plots/train/iemocap/seed0")
    for step in range(2):
        live.log_metric("loss", 1.0 / (step + 1))
        live.next_step()
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a cluster's time limit would
"""


def test_a_killed_run_leaves_no_partial_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with staged_curves("plots/train/iemocap") as factory:  # an earlier, complete run: five epochs
        live = factory("plots/train/iemocap/seed0")
        for step in range(5):
            live.log_metric("loss", 1.0 / (step + 1))
            live.next_step()
        live.end()
        assert not (tmp_path / "plots" / "train" / "iemocap").exists()  # nothing in place while it runs
    tsv = tmp_path / "plots" / "train" / "iemocap" / "seed0" / "plots" / "metrics" / "loss.tsv"
    assert len(tsv.read_text().splitlines()) == 6
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(tsv.read_text().splitlines()) == 6  # the complete curves, not two epochs of the killed run
    assert [p.name for p in (tmp_path / "plots" / "train").iterdir() if p.name.startswith(".iemocap.curves-")]
    with staged_curves("plots/train/iemocap") as factory:  # the next run clears the killed run's leftovers
        factory("plots/train/iemocap/seed1").end()
    assert sorted(p.name for p in (tmp_path / "plots" / "train").iterdir()) == ["iemocap"]
    assert sorted(p.name for p in (tmp_path / "plots" / "train" / "iemocap").iterdir()) == ["seed1"]


def test_staged_loggers_cross_to_worker_processes_and_stay_inside_their_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with staged_curves("plots/teachers/meld") as factory:
        again = pickle.loads(pickle.dumps(factory))  # erc.runtime.parallel sends it to spawned workers
        live = again("plots/teachers/meld/text")
        assert isinstance(live, SharedLive)
        live.end()
        with pytest.raises(ValueError, match="outside the stage's curve folders"):
            factory("plots/train/meld/seed0")
    assert (tmp_path / "plots" / "teachers" / "meld" / "text" / "metrics.json").exists()


# ---------------------------------------------------------------- 6. predict.py's bounds
def test_predict_caps_the_turns(tmp_path, monkeypatch):
    cwd = project(tmp_path)
    tiny_checkpoint(cwd / "models" / "meld.pt")
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}] * (MAX_TURNS + 1)))
    assert predict_exit(monkeypatch, cwd, "d.json", "--dataset", "meld") == (
        f"error: d.json: {MAX_TURNS + 1} turns, at most {MAX_TURNS} (the dialogue's graph grows with the square of "
        "its turns): split it")
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}] * MAX_TURNS))
    assert len(read_dialogue(cwd / "d.json")) == MAX_TURNS


def test_a_wav_must_lie_in_the_dialogue_folder_unless_allowed(tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    cwd = project(tmp_path / "repo")
    tiny_checkpoint(cwd / "models" / "meld.pt")
    (cwd / "talks").mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (cwd / "talks" / "link.wav").symlink_to(tmp_path / "secret.wav")
    for wav in ("../../secret.wav", str(tmp_path / "secret.wav"), "link.wav"):
        (cwd / "talks" / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi.", "wav": wav}]))
        message = predict_exit(monkeypatch, cwd, "talks/d.json", "--dataset", "meld")
        assert message == (f"error: talks/d.json: turn 0: wav {wav!r} lies outside the dialogue's folder "
                           f"{(cwd / 'talks').resolve()} (--allow-any-path reads it)")
        turns = read_dialogue(cwd / "talks" / "d.json", allow_any_path=True)
        assert os.path.samefile(turns[0]["wav"], tmp_path / "secret.wav")
    (cwd / "talks" / "own.wav").write_bytes(b"RIFF")
    (cwd / "talks" / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi.", "wav": "own.wav"}]))
    assert read_dialogue(cwd / "talks" / "d.json")[0]["wav"] == str(cwd / "talks" / "own.wav")

