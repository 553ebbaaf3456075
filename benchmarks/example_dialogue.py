"""The README's prediction example: a four-turn quarrel as dialogue.json (text only) and dialogue_wav.json (a wav
per turn, synthesised with espeak-ng, the angry turn 2 louder, faster and higher; each mixed at half level into a
-54 dB noise floor, as a room would give, since espeak's digital silence is unlike any recorded utterance).

    python benchmarks/example_dialogue.py OUT_DIR      # needs espeak-ng (Debian: apt-get install espeak-ng)
    python src/predict.py OUT_DIR/dialogue.json --format table
    python src/predict.py OUT_DIR/dialogue_wav.json --format table
"""
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

TURNS = [("M", "I've been waiting here for three hours.", {}),
         ("F", "I'm sorry, the traffic was terrible.", {}),
         ("M", "I'm sick of waiting for you! Every single time!", {"-a": "200", "-s": "210", "-p": "75"}),
         ("F", "Don't yell at me.", {})]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (speaker, text, voice) in enumerate(TURNS):
        raw = out / f"raw{i}.wav"
        args = ["espeak-ng", "-v", "en-us" if speaker == "M" else "en-us+f3", "-w", str(raw)]
        subprocess.run(args + [x for kv in voice.items() for x in kv] + [text], check=True)
        with wave.open(str(raw)) as w:
            rate, samples = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        mixed = 0.5 * samples.astype(np.float64) + 32767 * 10 ** (-54 / 20) * rng.standard_normal(len(samples))
        with wave.open(str(out / f"n{i}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
            w.writeframes(np.clip(mixed, -32768, 32767).astype(np.int16).tobytes())
        raw.unlink()
    dialogue = [{"speaker": s, "text": t} for s, t, _ in TURNS]
    (out / "dialogue.json").write_text(json.dumps(dialogue, indent=1) + "\n")
    (out / "dialogue_wav.json").write_text(json.dumps([{**d, "wav": f"n{i}.wav"} for i, d in enumerate(dialogue)],
                                                     indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
