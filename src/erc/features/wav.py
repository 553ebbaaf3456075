"""The shipped audio descriptors, measured from a wav file the way the public scripts that made them measured.

* 8 Praat descriptors (VoiceERC, ``feature_utils/extract_audio_feature.py``): duration, intensity mean (energy)
  and frame std, pitch mean over voiced frames, std and range of the voiced frames, articulation rate (syllable
  nuclei per second of sounding speech, de Jong & Wempe), mean harmonics-to-noise ratio. Native sample rate.
* 8 signal descriptors for IEMOCAP (MrCrowbar / Demfier ``extract_audio_features.py``, audio loaded at 44.1 kHz):
  mean |y|, std y, mean and std of the frame RMS, fraction of quiet frames, mean of the harmonic part (×1000),
  max and std of the centre-clipped signal's autocorrelation.

Needs ``praat-parselmouth`` (requirements.txt). Every failure is an ``InputError`` naming ``where``.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage, signal

from tqdm import tqdm

from erc.features.audio import PRAAT_COLUMNS, SIGNAL_COLUMNS, wav_path
from erc.data.datasets import Dialogue
from erc.runtime.errors import InputError

SIGNAL_RATE = 44100              # the signal descriptors' loading rate
FRAME, HOP = 2048, 512           # their RMS / STFT frames (librosa's defaults)
MIN_SPAN = 0.1                   # seconds: the shortest corpus span measured (Praat's pitch window at 75 Hz is 40 ms)


def _parselmouth():
    try:
        import parselmouth
        from parselmouth.praat import call
    except ImportError as err:  # pragma: no cover -- installed by requirements.txt
        raise InputError("audio from wav files needs praat-parselmouth: pip install -r requirements.txt") from err
    return parselmouth, call


def load_sound(path: str | Path, where: str):
    """A mono parselmouth Sound; a missing, unreadable or empty file is refused naming ``where``."""
    parselmouth, _ = _parselmouth()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{where}: wav file {path} not found")
    try:
        sound = parselmouth.Sound(str(path))
    except Exception as err:  # noqa: BLE001 -- Praat reports any unreadable audio as a PraatError
        raise InputError(f"{where}: {path} is not readable audio ({str(err).strip().splitlines()[0]})") from None
    if sound.n_channels > 1:
        sound = sound.convert_to_mono()
    if sound.n_samples < 2 or not np.isfinite(sound.values).all():
        raise InputError(f"{where}: {path} holds no audio samples")
    return sound


def articulation_rate(sound) -> float:
    """Syllable nuclei per second of sounding time (de Jong & Wempe 2009, as VoiceERC runs it: silence -25 dB,
    minimum dip 2 dB, minimum pause 0.3 s); NaN when no syllable is found (VoiceERC writes an empty cell)."""
    _, call = _parselmouth()
    silence_db, min_dip, min_pause = -25.0, 2.0, 0.3
    intensity = sound.to_intensity(50)
    min_int = call(intensity, "Get minimum", 0, 0, "Parabolic")
    max_int = call(intensity, "Get maximum", 0, 0, "Parabolic")
    q99 = call(intensity, "Get quantile", 0, 0, 0.99)
    threshold = max(q99 + silence_db, min_int)          # peaks must rise above this
    silence_threshold = silence_db - (max_int - q99)     # relative to the maximum, for the pause tier
    with warnings.catch_warnings():  # Praat warns about flat (silent) sounds; the caller names those itself
        warnings.simplefilter("ignore")
        textgrid = call(intensity, "To TextGrid (silences)", silence_threshold, min_pause, 0.1, "silent", "sounding")
    tier = call(textgrid, "Extract tier", 1)
    sounding = call(tier, "Down to TableOfReal", "sounding")
    speaking = sum(call(sounding, "Get value", row, 2) - call(sounding, "Get value", row, 1)
                   for row in range(1, call(sounding, "Get number of rows") + 1))
    contour = call(call(intensity, "Down to Matrix"), "To Sound (slice)", 1)
    extrema = call(contour, "To PointProcess (extrema)", "Left", "yes", "no", "Sinc70")
    times = [call(extrema, "Get time from index", i) for i in range(1, call(extrema, "Get number of points") + 1)]
    peaks = [(t, v) for t in times if (v := call(contour, "Get value at time", t, "Cubic")) > threshold]
    if not peaks or speaking <= 0:
        return math.nan
    valid, (current_t, current_v) = [], peaks[0]
    for t_next, _ in peaks[1:]:  # a peak counts when the dip to the next one is deeper than min_dip
        dip = call(intensity, "Get minimum", current_t, t_next, "None")
        if abs(current_v - dip) > min_dip:
            valid.append(current_t)
        current_t, current_v = t_next, call(intensity, "Get value at time", t_next, "Cubic")
    pitch = sound.to_pitch_ac(0.02, 30, 4, False, 0.03, 0.25, 0.01, 0.35, 0.25, 450)
    voiced = [t for t in valid if not math.isnan(pitch.get_value_at_time(t))
              and call(textgrid, "Get label of interval", 1, call(textgrid, "Get interval at time", 1, t)) == "sounding"]
    return len(voiced) / speaking if voiced else math.nan


def praat_descriptors(sound) -> np.ndarray:
    """The 8 VoiceERC descriptors in ``PRAAT_COLUMNS`` order; avg_pitch is NaN without a voiced frame."""
    _, call = _parselmouth()
    intensity = call(sound, "To Intensity", 100, 0.0, True)
    pitch = call(sound, "To Pitch", 0.0, 75, 600)
    f0 = pitch.selected_array["frequency"]
    f0 = f0[f0 != 0]  # unvoiced frames
    values = {
        "duration": sound.get_total_duration(),
        "avg_intensity": call(intensity, "Get mean", 0, 0, "energy"),
        "intensity_variation": float(np.std(intensity.values)),
        "avg_pitch": call(pitch, "Get mean", 0, 0, "Hertz"),
        "pitch_std": float(np.std(f0)) if len(f0) else 0.0,
        "pitch_range": float(np.ptp(f0)) if len(f0) else 0.0,
        "articulation_rate": articulation_rate(sound),
        "mean_hnr": call(sound.to_harmonicity(), "Get mean", 0, 0),
    }
    return np.array([values[c] for c in PRAAT_COLUMNS], dtype=np.float64)


def _frames_rms(y: np.ndarray) -> np.ndarray:
    padded = np.pad(y, FRAME // 2, mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP]
    return np.sqrt(np.mean(frames ** 2, axis=1))


def _harmonic_part(y: np.ndarray) -> np.ndarray:
    """Harmonic-percussive separation by median filtering of the STFT magnitude (Fitzgerald 2010; librosa's
    hpss defaults: kernel 31, soft masks of power 2, 0 where both parts are 0), back to a waveform of len(y)."""
    _, _, spec = signal.stft(y, nperseg=FRAME, noverlap=FRAME - HOP, window="hann", boundary="even", padded=True)
    magnitude = np.abs(spec)
    harmonic = ndimage.median_filter(magnitude, size=(1, 31), mode="reflect")    # smooth along time
    percussive = ndimage.median_filter(magnitude, size=(31, 1), mode="reflect")  # smooth along frequency
    total = harmonic ** 2 + percussive ** 2
    mask = np.divide(harmonic ** 2, total, out=np.zeros_like(total), where=total > 0)
    _, out = signal.istft(spec * mask, nperseg=FRAME, noverlap=FRAME - HOP, window="hann", boundary=True)
    return np.pad(out, (0, max(0, len(y) - len(out))))[:len(y)]


def signal_descriptors(samples: np.ndarray, rate: float) -> np.ndarray:
    """The 8 signal descriptors in ``SIGNAL_COLUMNS`` order, of mono ``samples`` at ``rate`` Hz."""
    y = np.asarray(samples, dtype=np.float64)
    if round(rate) != SIGNAL_RATE:
        up, down = SIGNAL_RATE, int(round(rate))
        g = math.gcd(up, down)
        y = signal.resample_poly(y, up // g, down // g)
    sig_mean, sig_std = float(np.mean(np.abs(y))), float(np.std(y))
    rms = _frames_rms(y + 0.0001)
    clip = 0.45 * sig_mean  # centre clipping before the autocorrelation
    clipped = np.where(y >= clip, y - clip, np.where(y <= -clip, y + clip, 0.0))
    n = len(clipped)
    spectrum = np.fft.rfft(clipped, 2 * n + 1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, 2 * n + 1)[:n]  # lags 0 .. n-1, unnormalised
    values = {
        "sig_mean": sig_mean, "sig_std": sig_std,
        "rmse_mean": float(np.mean(rms)), "rmse_std": float(np.std(rms)),
        "silence": float(np.mean(rms <= 0.4 * np.mean(rms))),
        "harmonic": float(np.mean(_harmonic_part(y)) * 1000),
        "auto_corr_max": float(1000 * np.max(autocorr) / n), "auto_corr_std": float(np.std(autocorr)),
    }
    return np.array([values[c] for c in SIGNAL_COLUMNS], dtype=np.float64)


def wav_descriptors(path: str | Path, dataset: str, where: str, strict: bool = True) -> np.ndarray:
    """Raw descriptors of one utterance's wav in the feature file's column order: IEMOCAP 8 Praat + 8 signal,
    MELD 8 Praat. ``strict``: a wav with no voiced frame is refused, its pitch being undefined (the shipped files
    leave such cells empty and extraction imputes them; a turn to predict deserves a word instead)."""
    sound = load_sound(path, where)
    praat = praat_descriptors(sound)
    if strict and math.isnan(praat[PRAAT_COLUMNS.index("avg_pitch")]):
        raise InputError(f"{where}: {path} has no voiced frame (silent or unvoiced audio): its pitch is undefined")
    if dataset != "iemocap":
        return praat
    return np.concatenate([praat, signal_descriptors(sound.values[0], sound.sampling_frequency)])


def wav_folder_descriptors(dataset: str, dialogues: list[Dialogue], wav_dir: str | Path, progress: bool = True):
    """``features.audio: praat-wav``: every utterance's wav in ``wav_dir`` (laid out as for opensmile) measured
    like the shipped descriptors; an absent wav gives a NaN row flagged missing, as the shipped files' gaps do."""
    wav_dir = Path(wav_dir)
    if not wav_dir.is_dir():
        raise InputError(f"{wav_dir}: wav folder not found (features.wav_dirs.{dataset})")
    columns = PRAAT_COLUMNS + (SIGNAL_COLUMNS if dataset == "iemocap" else [])
    paths = [wav_path(dataset, wav_dir, d, i) for d in dialogues for i in range(len(d))]
    values = np.full((len(paths), len(columns)), np.nan)
    missing = np.array([not p.is_file() for p in paths])
    for row in tqdm(np.flatnonzero(~missing), desc=f"{dataset} wav descriptors", disable=not progress, unit="wav"):
        values[row] = wav_descriptors(paths[row], dataset, str(paths[row]), strict=False)
    return values, missing, columns


def corpus_wav_descriptors(corpus, progress: bool = True):
    """A corpus's audio (its ``wav`` column): the 8 Praat descriptors of each utterance's wav, or of its
    ``start``-``end`` span of it; an utterance without a wav gives a NaN row flagged missing. Each file is read once."""
    rows = [(d, i, spec) for d in corpus.dialogues for i, spec in enumerate(corpus.audio.get(d.id, [(None,) * 3] * len(d)))]
    values = np.full((len(rows), len(PRAAT_COLUMNS)), np.nan)
    missing = np.array([spec[0] is None for _, _, spec in rows])
    sounds = {}
    for row in tqdm(np.flatnonzero(~missing), desc=f"{corpus.card.name} wav descriptors", disable=not progress,
                    unit="wav"):
        dialogue, i, (path, start, end) = rows[row]
        where = f"corpus {corpus.card.name}: dialogue {dialogue.id} utterance {i}"
        if path not in sounds:
            sounds = {path: load_sound(path, where)}  # spans of one file are consecutive rows, mostly
        sound = sounds[path]
        if start is not None or end is not None:
            start, end = start or 0.0, end if end is not None else sound.xmax
            if end > sound.xmax + 1e-6 or start >= sound.xmax:
                raise InputError(f"{where}: the span {start}-{end} s is past the end of {path} ({sound.xmax:.3f} s)")
            if end - start < MIN_SPAN:
                raise InputError(f"{where}: the span {start}-{end} s of {path} is shorter than {MIN_SPAN} s, too "
                                 "short to measure a pitch")
            sound = sound.extract_part(from_time=start, to_time=end, preserve_times=False)
        try:
            values[row] = praat_descriptors(sound)
        except Exception as err:  # noqa: BLE001 -- Praat reports anything it cannot measure as a PraatError
            raise InputError(f"{where}: Praat cannot measure {path} ({str(err).strip().splitlines()[0]})") from None
    return values, missing, list(PRAAT_COLUMNS)
