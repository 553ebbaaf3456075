"""Descriptors measured from wav files (erc.features.wav) and wav turns in predict.py, on speech-like sounds made here:
a harmonic source with a known pitch under syllable-like intensity humps."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from erc.features.audio import PRAAT_COLUMNS, SIGNAL_COLUMNS, apply_scaling, shipped_scaling
from erc.runtime.errors import InputError
from erc.models.checkpoint import Checkpoint
from erc.models.inference import dialogue_features, predict_dialogue, read_dialogue
from erc.features.wav import signal_descriptors, wav_descriptors

from test_bad_input import assert_one_line_error, project, run_script, tiny_checkpoint
from conftest import ROOT

RATE = 16000


def speech(f0=150.0, amplitude=0.3, seconds=1.5, humps=4, seed=0):
    """A voice-like signal: 19 harmonics of a slightly wavering f0, ``humps`` intensity humps, faint noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    source = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.sin(np.pi * humps * t / seconds) ** 2
    noise = 0.001 * np.random.default_rng(seed).standard_normal(len(t))
    return amplitude * source * envelope / np.abs(source).max() + noise


def write_wav(path, samples):
    wavfile.write(path, RATE, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
    return path


def measure(path, dataset="iemocap"):
    return dict(zip(PRAAT_COLUMNS + SIGNAL_COLUMNS, wav_descriptors(path, dataset, "turn 0")))


def test_louder_higher_and_longer_copies_measure_as_such(tmp_path):
    base = measure(write_wav(tmp_path / "base.wav", speech()))
    loud = measure(write_wav(tmp_path / "loud.wav", 2 * speech()))
    high = measure(write_wav(tmp_path / "high.wav", speech(f0=250)))
    long = measure(write_wav(tmp_path / "long.wav", speech(seconds=2.345)))
    assert abs(loud["avg_intensity"] - base["avg_intensity"] - 20 * math.log10(2)) < 0.1  # +6.02 dB
    assert abs(loud["avg_pitch"] - base["avg_pitch"]) < 0.5 and abs(loud["sig_mean"] / base["sig_mean"] - 2) < 0.02
    assert abs(base["avg_pitch"] - 150) < 3 and abs(high["avg_pitch"] - 250) < 5
    assert high["pitch_range"] > base["pitch_range"]  # the same ±5 % waver spans more Hz at a higher f0
    assert abs(base["duration"] - 1.5) < 0.01 and abs(long["duration"] - 2.345) < 0.01
    # each hump is a syllable nucleus; de Jong & Wempe never count the last peak: (4 - 1) / 1.5 s, and more
    # humps in the same time give a higher rate
    assert abs(base["articulation_rate"] - 3 / 1.5) < 0.3
    assert measure(write_wav(tmp_path / "fast.wav", speech(humps=8)))["articulation_rate"] > base["articulation_rate"] + 1
    assert base["mean_hnr"] > 15  # a clean harmonic source


def test_signal_descriptors_of_known_signals():
    rate = 44100
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    d = dict(zip(SIGNAL_COLUMNS, signal_descriptors(tone, rate)))
    assert abs(d["sig_mean"] - 0.5 * 2 / np.pi) < 1e-3 and abs(d["sig_std"] - 0.5 / np.sqrt(2)) < 1e-3
    assert abs(d["rmse_mean"] - 0.5 / np.sqrt(2)) < 5e-3 and d["silence"] == 0.0
    half = np.concatenate([tone[: rate // 2], np.zeros(rate // 2)])  # silent second half
    assert abs(dict(zip(SIGNAL_COLUMNS, signal_descriptors(half, rate)))["silence"] - 0.5) < 0.05
    # a 16 kHz copy is resampled to 44.1 kHz first: the level descriptors agree
    t16 = np.arange(16000) / 16000
    d16 = dict(zip(SIGNAL_COLUMNS, signal_descriptors(0.5 * np.sin(2 * np.pi * 220 * t16), 16000)))
    assert abs(d16["sig_std"] - d["sig_std"]) < 1e-3 and abs(d16["rmse_mean"] - d["rmse_mean"]) < 5e-3


def test_bad_wavs_are_named(tmp_path):
    with pytest.raises(InputError, match="turn 0: wav file .*nothing.wav not found"):
        wav_descriptors(tmp_path / "nothing.wav", "meld", "turn 0")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(InputError, match="turn 0: .*text.wav is not readable audio"):
        wav_descriptors(tmp_path / "text.wav", "meld", "turn 0")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE))
    with pytest.raises(InputError, match="turn 0: .*silent.wav has no voiced frame"):
        wav_descriptors(silent, "meld", "turn 0")


def test_a_wav_turn_becomes_the_scaled_descriptors_with_the_flag_off(tmp_path):
    write_wav(tmp_path / "a.wav", speech())
    dialogue = tmp_path / "d.json"
    dialogue.write_text(json.dumps([{"speaker": "Joey", "text": "I waited three hours!", "wav": "a.wav"},
                                    {"speaker": "Ross", "text": "Sorry."}]))
    turns = read_dialogue(dialogue)  # the wav path is resolved next to the dialogue file
    dims = {"audio": (9,)}
    audio = dialogue_features(turns, dims, {"audio": "praat"}, "d.json", "meld")["audio"]
    expected = apply_scaling(wav_descriptors(tmp_path / "a.wav", "meld", "t")[None], shipped_scaling("meld"))[0]
    assert torch.allclose(audio[0, :-1], torch.from_numpy(expected)) and audio[0, -1] == 0
    assert audio[1, -1] == 1 and (audio[1, :-1] == 0).all()  # no wav: audio missing
    with pytest.raises(InputError, match="came from 'opensmile'"):
        dialogue_features(turns, dims, {"audio": "opensmile"}, "d.json", "meld")


def test_predict_end_to_end_from_text_and_generated_wavs(tmp_path):
    cwd = project(tmp_path)
    (cwd / "data").mkdir()
    (cwd / "data" / "raw").symlink_to(ROOT / "data" / "raw")  # the shipped descriptors' training statistics
    tiny_checkpoint(cwd / "models" / "meld.pt")
    write_wav(cwd / "joey.wav", speech(f0=120))
    write_wav(cwd / "ross.wav", speech(f0=140, amplitude=0.6, humps=6))
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "How you doin'?", "wav": "joey.wav"},
                                            {"speaker": "Ross", "text": "We were on a break!", "wav": "ross.wav"},
                                            {"speaker": "Joey", "text": "Okay."}]))
    result = run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [t["speaker"] for t in out] == ["Joey", "Ross", "Joey"]
    # the recordings reach the model: without them the same turns get other probabilities
    # (Ross's turn without his wav; Joey's keeps his, so the dialogue still has audio)
    (cwd / "nowav.json").write_text(json.dumps([{"speaker": "Joey", "text": "How you doin'?", "wav": "joey.wav"},
                                                {"speaker": "Ross", "text": "We were on a break!"},
                                                {"speaker": "Joey", "text": "Okay."}]))
    without = run_script("predict.py", "nowav.json", "--dataset", "meld", cwd=cwd)
    assert without.returncode == 0, without.stderr
    assert out[1]["probabilities"] != json.loads(without.stdout)[1]["probabilities"]
    # a recording far outside the training data (digital silence around the speech: a huge intensity spread)
    # is still predicted, with a warning naming the turn and the descriptor
    write_wav(cwd / "studio.wav", np.concatenate([np.zeros(RATE), speech(), np.zeros(RATE)]))
    (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi.", "wav": "studio.wav"}]))
    result = run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd)
    assert result.returncode == 0 and "warning: d.json: turn 0: intensity_variation" in result.stderr
    # bad turns: one line naming the turn
    write_wav(cwd / "quiet.wav", np.zeros(RATE))
    for wav, message in (("gone.wav", "not found"), ("quiet.wav", "no voiced frame")):
        (cwd / "d.json").write_text(json.dumps([{"speaker": "Joey", "text": "Hi."},
                                                {"speaker": "Ross", "text": "Hey.", "wav": wav}]))
        assert_one_line_error(run_script("predict.py", "d.json", "--dataset", "meld", cwd=cwd), "turn 1", message)


def test_predict_dialogue_accepts_wav_turns_in_process(tmp_path):
    """The same through the library call: the wav turn changes the prediction (the audio reaches the model)."""
    write_wav(tmp_path / "a.wav", speech())
    checkpoint_path = tmp_path / "meld.pt"
    tiny_checkpoint(checkpoint_path)
    checkpoint = Checkpoint.load(checkpoint_path)
    with_wav = [{"speaker": "Joey", "text": "Hi.", "wav": str(tmp_path / "a.wav")}]
    without = [{"speaker": "Joey", "text": "Hi."}]
    a = predict_dialogue(with_wav, checkpoint, "meld")[0]["probabilities"]
    b = predict_dialogue(without, checkpoint, "meld")[0]["probabilities"]
    assert a != b


def test_praat_wav_extraction_measures_a_wav_folder_and_keeps_its_scaling(tmp_path):
    from erc.data.datasets import load_dialogues
    from erc.features.extract import extract
    from erc.config.params import validate_params
    from erc.models.inference import stored_scaling
    dialogues = [d for split in ("train", "valid", "test")
                 for d in [x for x in load_dialogues("meld", ROOT / "data" / "raw") if x.split == split][:2]]
    folder = {"train": "train", "valid": "dev", "test": "test"}
    louder = set()
    for d in dialogues:
        (tmp_path / folder[d.split]).mkdir(exist_ok=True)
        for i, (dia, utt) in enumerate(d.utterance_keys):
            if d is dialogues[4] and i == 0:
                continue  # one utterance without a recording: the first test dialogue's first
            amplitude = 0.6 if i % 2 else 0.15
            if i % 2:
                louder.add((d.id, i))
            write_wav(tmp_path / folder[d.split] / f"dia{dia}_utt{utt}.wav",
                      speech(f0=120 + 10 * i, amplitude=amplitude, seconds=0.6, seed=i))
    params = validate_params({"datasets": ["meld"], "features": {"text": "none", "audio": "praat-wav",
                                                                 "wav_dirs": {"iemocap": None, "meld": str(tmp_path)}}})
    feats = extract("meld", params, ROOT / "data" / "raw", dialogues=dialogues, progress=False)
    audio = feats.features["audio"]  # (N, 8 descriptors + flag)
    assert audio.shape == (sum(len(d) for d in dialogues), len(PRAAT_COLUMNS) + 1)
    first_test = sum(len(d) for d in dialogues if d.split != "test")
    assert audio[first_test, -1] == 1 and audio[:, -1].sum() == 1  # only the absent wav is flagged
    assert feats.audio_scaling["columns"] == PRAAT_COLUMNS
    intensity = audio[:, PRAAT_COLUMNS.index("avg_intensity")]
    rows = [(d.id, i) for d in dialogues for i in range(len(d))]
    loud = torch.tensor([r in louder for r in rows])
    present = audio[:, -1] == 0
    assert intensity[loud & present].min() > intensity[~loud & present].max()  # 4x the amplitude: +12 dB
    # predict.py reads that scaling back from the feature file
    (tmp_path / "data" / "features").mkdir(parents=True)
    feats.save(tmp_path / "data" / "features" / "meld.pt")
    import os
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        scaling = stored_scaling("meld")
    finally:
        os.chdir(here)
    assert np.allclose(scaling["mean"], feats.audio_scaling["mean"])
