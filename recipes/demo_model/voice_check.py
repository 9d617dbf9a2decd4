"""Listen-free check of synthetic voices: intelligibility, pitch and synthesis cost.

Speaks N dev sentences with each voice (make_data.py's synthesizers), transcribes them with
pocketsphinx's bundled en-us model (a peer recognizer, `pip install pocketsphinx`) and prints per
voice: WER of that recognizer (lower = more intelligible to it), median F0 (female voices are
typically 160-250 Hz, male 85-155 Hz) and CPU seconds per audio second (one thread; this
process and its synthesizer subprocesses).

Usage: python voice_check.py --n 12 [--voices kokoro:jf_alpha kokoro:jf_nezumi@0.5+jm_kumo
                                     piper:en_US-joe-medium flite:kal16 espeak:en-us ...]
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data as M
from kokoro_voice import KOKORO_VOICES, synth_kokoro
from textnorm import build_sentences
from common import edit_distance

DEFAULT_VOICES = ["kokoro:" + v for v in KOKORO_VOICES] + [
    "piper:en_US-joe-medium", "flite:kal16", "flite:slt", "espeak:en-us",
    "festival:cmu_us_slt_arctic_hts"]


def synth(voice, text):
    kind, name = voice.split(":", 1)
    if kind == "kokoro":  # "jf_alpha" or a blend as make_data.py names it, "jf_alpha@0.30+jm_kumo"
        a, _, b = name.partition("+")
        a, _, w = a.partition("@")
        return synth_kokoro(text, (a, b or a), float(w or 1), 1.0)
    if kind == "piper":
        return M.synth_piper(text, 1.0, 0.667, 0.8)
    if kind == "flite":
        return M.synth_flite(text, name, 1.0, None)
    if kind == "espeak" and name.startswith("mb-"):  # an MBROLA voice behind espeak-ng's front end
        return M.synth_espeak_mbrola(text, name, 165, 50)
    if kind == "espeak":
        return M.synth_espeak(text, name, 165, 50)
    return M.synth_festival_batch([(text, 1.0)], name)[0]


def median_f0(x, sr=M.SR):
    """Median F0 (Hz) of the voiced 40 ms frames, by normalised autocorrelation (60-400 Hz)."""
    n, lo, hi = int(0.04 * sr), sr // 400, sr // 60
    f0s = []
    for s in range(0, len(x) - n, n // 2):
        f = x[s:s + n] - x[s:s + n].mean()
        e = float(f @ f)
        if e < 1e-4 * n:
            continue
        ac = np.correlate(f, f, "full")[n - 1:] / e
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5:
            f0s.append(sr / lag)
    return float(np.median(f0s)) if f0s else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--voices", nargs="+", default=DEFAULT_VOICES)
    args = ap.parse_args()
    from pocketsphinx import Decoder

    dec = Decoder(samprate=M.SR)
    sents = random.Random(0).sample([s for s in build_sentences()["dev"] if s[2] == "fortune"
                                     and 5 <= len(s[1].split()) <= 20], args.n)
    print("voice                              WER%   F0 Hz  cpu/audio")
    for voice in args.voices:
        synth(voice, "warm up.")
        errs = words = 0
        cpu = secs = 0.0
        f0 = []
        for tts, lab, _ in sents:
            c0 = sum(os.times()[:4])  # this process and its finished children
            a, sr, sp = synth(voice, tts)
            cpu += sum(os.times()[:4]) - c0
            x, _ = M.finish(a, sr, sp)
            secs += len(x) / M.SR
            f0.append(median_f0(x.astype(np.float32) / 32768))
            dec.start_utt(); dec.process_raw(x.tobytes(), full_utt=True); dec.end_utt()
            hyp = dec.hyp().hypstr.lower() if dec.hyp() else ""
            errs += edit_distance(hyp.split(), lab.split()); words += len(lab.split())
        print(f"{voice:34s} {100 * errs / words:5.1f} {np.nanmedian(f0):7.0f} {cpu / secs:9.2f}",
              flush=True)


if __name__ == "__main__":
    main()
