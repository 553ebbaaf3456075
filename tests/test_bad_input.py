"""Bad input as a user meets it, through the command lines: one ``error: ...`` line naming the file or key, a
non-zero exit, no traceback, and nothing half-written. Each script runs here as ``__main__`` (``run_script``: the
same code path as the command, without a new interpreter importing torch); ``test_each_script_as_a_command_*`` runs
every stage script once as a real command."""
import contextlib
import copy
import io
import json
import os
import runpy
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import ROOT, shapes_only
from erc.runtime.errors import InputError
from erc.models.mglra import MGLRA
from erc.config.params import load_params, validate_params
from erc.training.loop import model_config

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def script_path(script):
    """``src/<script>``, or a path from the repository's root (``benchmarks/gpu_check.py``)."""
    return str(ROOT / script) if "/" in script else str(ROOT / "src" / script)


def run_command(script, *args, cwd):
    """``python src/<script> <args>`` in ``cwd``, a new interpreter, as a user types it."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, script_path(script), *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def run_script(script, *args, cwd):
    """The same command run in this process: ``src/<script>`` executed as ``__main__`` (its own ``if __name__``
    block, so ``run_stage`` or ``main()`` as the command calls it) with ``sys.argv`` set, in ``cwd``, its stdout and
    stderr captured. What the interpreter would do at the end is done here: a ``SystemExit`` message goes to stderr
    with exit status 1, an exception that escapes prints its traceback (which ``assert_one_line_error`` refuses).
    The working directory, ``sys.argv`` and torch's thread count are put back."""
    path = script_path(script)
    out, err = io.StringIO(), io.StringIO()
    saved = os.getcwd(), sys.argv, torch.get_num_threads()
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = [path, *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
            except Exception:  # noqa: BLE001 -- what the interpreter prints for an uncaught error
                import traceback
                traceback.print_exc(file=err)
                code = 1
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        torch.set_num_threads(saved[2])
    if isinstance(code, str):
        err.write(code + "\n")
        code = 1
    return subprocess.CompletedProcess([path, *args], code or 0, out.getvalue(), err.getvalue())


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()  # progress bars before the failure may precede it
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert sum("error" in line.lower() for line in lines) == 1 and "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def project(tmp_path, edit=None):
    """A working directory with params.yaml (optionally edited) and nothing else."""
    params = copy.deepcopy(PARAMS)
    if edit:
        edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


# ---------------------------------------------------------------- the schema
@pytest.mark.parametrize("edit, message", [
    (lambda p: p["mkd"].update(lamda_kd=1.0), "unknown key 'mkd.lamda_kd' (did you mean 'mkd.lambda_kd'?)"),
    (lambda p: p.update(modle={}), "unknown key 'modle' (did you mean 'model'?)"),
    (lambda p: p["mrl"].update(nesting=[8, 999]), "'mrl.nesting' sizes [999] exceed the block width"),
    (lambda p: p["model"].update(dropout=1.5), "'model.dropout' should be less than 1, got 1.5"),
    (lambda p: p["model"].update(mask_ratio=True), "'model.mask_ratio'"),
    (lambda p: p["model"].update(input_dropout=-0.1), "'model.input_dropout'"),
    (lambda p: p["train"].update(modality_dropout=1.0), "'train.modality_dropout' should be less than 1, got 1.0"),
    (lambda p: p["model"].update(hidden={"iemocap": 128}), "missing key 'model.hidden.meld'"),
    (lambda p: p["model"].update(hidden={"iemocap": 128, "meld": 0}), "'model.hidden.meld' should be greater than 0"),
    (lambda p: p["model"].update(hidden=130, attention_heads=4), "divisible by attention_heads"),
    (lambda p: p["train"].update(lr="1e-3"), "'train.lr' should be a valid number, got '1e-3'"),
    (lambda p: p["train"].update(seeds=[0, 0]), "seeds must be distinct"),
    (lambda p: p["train"].update(loss={"iemocap": "nll", "meld": "focal"}), "'train.loss.iemocap'"),
    (lambda p: p["features"].update(text="bert"), "'features.text'"),
    (lambda p: p["features"].update(text="none", audio="none", visual="none"), "selects no modality"),
    (lambda p: p["mrl"].update(weights=[1.0, 2.0]), "'mrl.weights' needs one weight per nesting size"),
    (lambda p: p["mrl"].update(weights=[0.0] * 6), "'mrl.weights' are all 0"),
    (lambda p: p["mrl"].update(nesting=[8, 8, 16]), "'mrl.nesting' lists a size twice"),
    (lambda p: p["train"].update(lr=float("inf")), "'train.lr' should be a finite number"),
    (lambda p: p["mkd"].update(temperature=float("nan")), "'mkd.temperature' should be a finite number"),
    (lambda p: p.update(datasets=["iemocap", "iemocap"]), "'datasets' lists a dataset twice"),
    (lambda p: p["model"].update(hidden={"iemocap": 128, "meldd": 128}),
     "unknown key 'model.hidden.meldd' (did you mean 'model.hidden.meld'?)"),
    (lambda p: p["features"].update(text="none", audio="none", visual="file"),
     "'features.files.iemocap.visual' must name a feature file"),
    (lambda p: p["features"].update(audio="opensmile"), "'features.wav_dirs.iemocap' must name the wav folder"),
    (lambda p: p["features"].update(text={"iemocap": "minilm", "meld": "file"}),
     "'features.files.meld.text' must name a feature file"),
    (lambda p: p["features"].update(text={"iemocap": "minilm", "meld": "bert"}), "'features.text.meld'"),
    (lambda p: p["features"].update(text={"iemocap": "minilm", "mled": "minilm-ft"}),
     "unknown key 'features.text.mled' (did you mean 'features.text.meld'?)"),
    (lambda p: p["features"].update(text={"iemocap": "none", "meld": "minilm"}, audio="none"), "selects no modality"),
    (lambda p: p["finetune"].update(folds=1), "folds must be 0 (no cross-fitting) or at least 2, got 1"),
    (lambda p: p["finetune"].update(folds={"iemocap": 3, "meld": 1}), "folds.meld must be 0"),
    (lambda p: p["finetune"].update(context={"iemocap": 0}), "missing key 'finetune.context.meld'"),
    (lambda p: p["finetune"].update(eval_from={"iemocap": "full", "meld": "mean"}), "'finetune.eval_from.meld'"),
    (lambda p: p["finetune"].update(fold_by="session"), "fold_by (once, so MELD's too): MELD has no sessions"),
    (lambda p: p["finetune"].update(fold_by={"iemocap": "dialogue", "meld": "session"}), "fold_by.meld: MELD has no"),
    (lambda p: p["finetune"].update(fold_by={"iemocap": "speaker", "meld": "dialogue"}), "'finetune.fold_by.iemocap'"),
])
def test_schema_names_the_bad_key(edit, message):
    params = copy.deepcopy(PARAMS)
    edit(params)
    with pytest.raises(InputError) as err:
        validate_params(params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_committed_params_pass_and_defaults_fill_missing_keys():
    params = load_params(ROOT / "params.yaml")
    assert params.train.seeds == [0, 1, 2, 3, 4] and params.for_dataset("meld").train.epochs == 20
    trimmed = copy.deepcopy(PARAMS)
    del trimmed["model"]["speaker"], trimmed["references"]
    filled = validate_params(trimmed)
    assert filled.model.speaker == "text"  # a key left out: the released placement (text nodes)
    assert filled.references.bclstm_hidden == 128 and filled.references.logreg_C == [0.01, 0.1, 1.0, 10.0]
    assert filled.model.hidden.model_dump() == PARAMS["model"]["hidden"]  # what is given is kept
    assert model_config(shapes_only({"text": torch.zeros(1, 2, 12)}, 2, [0, 1, 2]),
                        filled, "iemocap").speaker == "text"


# ---------------------------------------------------------------- stage scripts
def test_stage_with_a_mistyped_key_fails_in_one_line(tmp_path):
    cwd = project(tmp_path, lambda p: p["mkd"].update(lamda_kd=1.0))
    assert_one_line_error(run_script("train.py", "iemocap", cwd=cwd), "params.yaml", "mkd.lamda_kd", "mkd.lambda_kd")


def test_stage_with_nesting_wider_than_the_block_fails(tmp_path):
    cwd = project(tmp_path, lambda p: p["mrl"].update(nesting=[8, 999]))
    assert_one_line_error(run_script("train_teachers.py", "iemocap", cwd=cwd), "mrl.nesting", "999")


def test_stage_with_a_missing_input_names_it(tmp_path):
    result = run_script("train.py", "meld", cwd=project(tmp_path))
    assert_one_line_error(result, "data/features/meld.pt", "not found")
    assert_one_line_error(run_script("train.py", cwd=tmp_path), "usage")
    assert_one_line_error(run_script("evaluate.py", "imdb", cwd=tmp_path), "unknown dataset 'imdb'")


def test_truncated_inputs_are_named_and_nothing_is_written(tmp_path):
    cwd = project(tmp_path)
    raw = cwd / "data" / "raw"
    raw.mkdir(parents=True)
    whole = (ROOT / "data" / "raw" / "iemocap.pkl").read_bytes()
    (raw / "iemocap.pkl").write_bytes(whole[: len(whole) // 3])
    assert_one_line_error(run_script("extract_features.py", "iemocap", cwd=cwd), "data/raw/iemocap.pkl", "unreadable")
    assert not (cwd / "data" / "features").exists()
    # a truncated feature file downstream
    (cwd / "data" / "features").mkdir(parents=True)
    (cwd / "data" / "features" / "iemocap.pt").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(run_script("build_graphs.py", "iemocap", cwd=cwd), "data/features/iemocap.pt", "unreadable")
    assert not (cwd / "data" / "graphs").exists()


# ---------------------------------------------------------------- every stage script once as a command
def truncated_raw(cwd):
    (cwd / "data" / "raw").mkdir(parents=True)
    whole = (ROOT / "data" / "raw" / "iemocap.pkl").read_bytes()
    (cwd / "data" / "raw" / "iemocap.pkl").write_bytes(whole[: len(whole) // 3])


def truncated_features(cwd):
    (cwd / "data" / "features").mkdir(parents=True)
    (cwd / "data" / "features" / "iemocap.pt").write_bytes(b"PK\x03\x04 truncated")


# script, its arguments, params.yaml's edit, other files, what the line names, the output that must not appear
COMMANDS = [
    ("train.py", ["iemocap"], lambda p: p["mkd"].update(lamda_kd=1.0), None, ["params.yaml", "mkd.lambda_kd"],
     "models"),
    ("train_teachers.py", ["iemocap"], lambda p: p["mrl"].update(nesting=[8, 999]), None, ["mrl.nesting", "999"],
     "models"),
    ("train_references.py", ["meld"], None, None, ["data/features/meld.pt", "not found"], "models"),
    ("evaluate.py", ["imdb"], None, None, ["unknown dataset 'imdb'"], "metrics"),
    ("extract_features.py", ["iemocap"], None, truncated_raw, ["data/raw/iemocap.pkl", "unreadable"], "data/features"),
    ("build_graphs.py", ["iemocap"], None, truncated_features, ["data/features/iemocap.pt", "unreadable"],
     "data/graphs"),
    ("finetune_text.py", ["meld", "imdb"], None, None, ["unknown dataset 'imdb'"], "models"),
]  # predict.py's: tests/test_security.py, test_predict_py_refuses_a_malicious_checkpoint_as_a_command


@pytest.mark.parametrize("script, args, edit, files, fragments, unwritten", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_each_script_as_a_command_fails_in_one_line(tmp_path, script, args, edit, files, fragments, unwritten):
    cwd = project(tmp_path, edit)
    if files:
        files(cwd)
    result = run_command(script, *args, cwd=cwd)
    assert_one_line_error(result, *fragments)
    assert result.returncode == 1 and not (cwd / unwritten).exists()
    # and run here, the same line
    assert run_script(script, *args, cwd=cwd).stderr.strip().splitlines()[-1] == result.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------- predict.py
def tiny_checkpoint(path):
    feats = shapes_only({"text": torch.zeros(1, 4, 384), "audio": torch.zeros(1, 9)}, 9, range(7))
    params = load_params(ROOT / "params.yaml")
    # narrower than the nesting sizes allow: unchecked, nesting_sizes keeps the sizes below the block
    params = params.model_copy(update={"model": params.model.model_copy(update={"hidden": 16, "graph_hidden": 8})})
    config = model_config(feats, params, "meld")
    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config.as_dict(), "runs": {0: {"state": MGLRA(config).state_dict()}},
                "sources": {"text": "minilm", "audio": "praat", "visual": "none"}}, path)


def test_predict_refuses_non_finite_audio_and_prints_strict_json(tmp_path):
    cwd = project(tmp_path)
    tiny_checkpoint(cwd / "models" / "meld.pt")
    bad = cwd / "bad.json"
    bad.write_text('[{"speaker": "Joey", "text": "Hi."}, {"speaker": "Ross", "text": "Hey.", '
                   '"audio": [NaN, 0, 0, 0, 0, 0, 0, 0]}]')  # Python's json reads NaN
    assert_one_line_error(run_script("predict.py", "bad.json", "--dataset", "meld", cwd=cwd), "turn 1", "NaN")
    good = cwd / "good.json"
    good.write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}, {"speaker": "Ross", "text": "Hey.",
                                                                     "audio": [0.5] * 8}]))
    result = run_script("predict.py", "good.json", "--dataset", "meld", cwd=cwd)
    assert result.returncode == 0, result.stderr

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    out = json.loads(result.stdout, parse_constant=refuse)
    assert [turn["speaker"] for turn in out] == ["Joey", "Ross"]
    assert_one_line_error(run_script("predict.py", "good.json", "--dataset", "meld", "--seed", "7", cwd=cwd), "--seed 7")
    # a dialogue without audio is answered as mkd.text_only.meld says: the text student head needs nothing but the
    # checkpoint; the text teacher's file is read only when the answer needs it, and its absence named
    (cwd / "text.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}]))
    project(cwd, lambda p: p["mkd"].update(text_only={"iemocap": "teacher", "meld": "student"}))
    result = run_script("predict.py", "text.json", "--dataset", "meld", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert [turn["speaker"] for turn in json.loads(result.stdout)] == ["Joey"]
    project(cwd, lambda p: p["mkd"].update(text_only={"iemocap": "student", "meld": "teacher"}))
    assert_one_line_error(run_script("predict.py", "text.json", "--dataset", "meld", cwd=cwd), "models/teachers/meld.pt")
    shutil.rmtree(cwd / "models")
    assert_one_line_error(run_script("predict.py", "good.json", "--dataset", "meld", cwd=cwd), "models/meld.pt")


def test_corrupt_raw_files_are_named(tmp_path):
    cwd = project(tmp_path)
    found = cwd / "data" / "raw" / "found"
    found.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "raw" / "iemocap.pkl", cwd / "data" / "raw" / "iemocap.pkl")
    (found / "iemocap_standard_order_utterance_ids.json").write_text('{"Ses01F_impro01": [')
    assert_one_line_error(run_script("extract_features.py", "iemocap", cwd=cwd),
                          "iemocap_standard_order_utterance_ids.json", "not valid JSON")
    import pickle
    with open(cwd / "data" / "raw" / "iemocap.pkl", "wb") as f:
        pickle.dump([1, 2, 3, 4, 5, 6], f)  # the right length, the wrong contents
    assert_one_line_error(run_script("extract_features.py", "iemocap", cwd=cwd), "iemocap.pkl", "dicts keyed by dialogue id")
    assert not (cwd / "data" / "features").exists()


def test_predict_refuses_files_of_the_wrong_kind(tmp_path):
    cwd = project(tmp_path)
    (cwd / "models").mkdir()
    torch.save(torch.zeros(3), cwd / "models" / "meld.pt")  # a torch file, not a checkpoint
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."}]))
    assert_one_line_error(run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd),
                          "models/meld.pt", "not a model checkpoint")
    tiny_checkpoint(cwd / "models" / "meld.pt")
    (cwd / "d.json").write_bytes(b"\xff\xfe\x00binary")
    assert_one_line_error(run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd), "d.json", "UTF-8")
    (cwd / "d.json").write_text(json.dumps([{"speaker": ["Joey"], "text": "Hi."}]))
    assert_one_line_error(run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd), "turn 0", "speaker")
