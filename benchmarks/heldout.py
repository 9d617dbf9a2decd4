"""A long recording with pauses, spoken by the demo model's HELD-OUT voices on held-out sentences.

Built with the demo recipe's own synthesizer wrappers and text split (recipes/demo_model), so the
benchmarks never touch training voices or the reserved evaluation corpora. Cached on disk.

    python benchmarks/heldout.py --minutes 3     # writes benchmarks/results/cache/heldout_3min.{wav,json}
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / "results" / "cache"
SAMPLE_RATE = 16_000
VOICES = ("flite:slt", "espeak:en-029", "festival:cmu_us_slt_arctic_hts")
PAUSE_S = (0.25, 2.5)  # silences between sentences: some shorter than the VAD hangover, most longer


def _recipe():
    """Import the recipe's synthesizer and text modules."""
    sys.path.insert(0, str(ROOT / "recipes" / "demo_model"))
    import make_data
    import textnorm

    return make_data, textnorm


def _speak(make_data, tts: str, voice: str) -> np.ndarray | None:
    synth, name = voice.split(":", 1)
    if synth == "flite":
        audio, rate, spans = make_data.synth_flite(tts, name, 1.0, None)
    elif synth == "espeak":
        audio, rate, spans = make_data.synth_espeak(tts, name, 165, 50)
    else:
        audio, rate, spans = make_data.synth_festival_batch([(tts, 1.0)], name)[0]
    pcm, _ = make_data.finish(audio, rate, spans)
    return None if pcm is None else pcm.astype(np.float32) / 32_768.0


def build(minutes: float, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Concatenate held-out sentences in rotating held-out voices with random pauses."""
    make_data, textnorm = _recipe()
    sentences = textnorm.build_sentences()["eval"]
    rng = random.Random(seed)
    rng.shuffle(sentences)
    parts, segments, position = [np.zeros(SAMPLE_RATE // 2, np.float32)], [], SAMPLE_RATE // 2
    for index, (tts, label, _) in enumerate(sentences):
        if position >= minutes * 60 * SAMPLE_RATE:
            break
        voice = VOICES[index % len(VOICES)]
        audio = _speak(make_data, tts, voice)
        if audio is None:
            continue
        segments.append({"text": label, "voice": voice, "start": position / SAMPLE_RATE,
                         "end": (position + audio.size) / SAMPLE_RATE})
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE), np.float32)
        parts += [audio, pause]
        position += audio.size + pause.size
    return np.concatenate(parts), segments


def load(minutes: float = 3.0) -> tuple[Path, list[dict]]:
    """Path of the cached recording (built on first use) and its segments with reference text."""
    wav, meta = CACHE / f"heldout_{minutes:g}min.wav", CACHE / f"heldout_{minutes:g}min.json"
    if not (wav.is_file() and meta.is_file()):
        audio, segments = build(minutes)
        CACHE.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        meta.write_text(json.dumps(segments, indent=1))
    return wav, json.loads(meta.read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    path, segs = load(args.minutes)
    print(f"{path}: {len(segs)} sentences, {segs[-1]['end']:.1f} s of speech span")
