"""Female-range versions of the male training utterances, made with the WORLD vocoder (pyworld).

  python world_voices.py --n 3000 --tag w1 --seed 21        # -> /work/demo-data/train/shard_w1_<k>.*
  python world_voices.py --data /work/demo-data-t --voices flite:,festival:kal,festival:ked
      --n 3000 --tag w2 --seed 51 --shard 250                 # only these voices' utterances

The held-out voices are female (flite slt, festival slt HTS) and the training voices mostly male;
the few natural female voices (Kokoro af_/bf_) are slow to synthesize here (~0.8 CPU s per audio
second). WORLD analyses an utterance (F0 by DIO + StoneMask, spectral envelope by CheapTrick,
aperiodicity by D4C) and resynthesizes it with F0 raised by a random ratio (towards 160-260 Hz)
and the spectral envelope and aperiodicity warped up in frequency (shorter vocal tract: formants
x 1.08-1.25): about 0.07 CPU s per audio second. Timing is unchanged, so the word spans carry
over. Only utterances of the train split are converted (voices of the training mix; none held
out); the new voice is named "world:<source voice>@f0x<ratio>,a<alpha>".
"""
from __future__ import annotations

import argparse
import glob
import importlib.machinery
import importlib.util
import os
import random
import sys
import sysconfig
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

FRAME_MS = 5.0  # WORLD analysis hop
F0_TARGET_HZ = (160.0, 260.0)  # median F0 drawn for the converted voice
ALPHA = (1.08, 1.25)  # envelope warp: new(f) = old(f / alpha)
MIN_F0_RATIO, MAX_F0_RATIO = 1.2, 2.4
FEMALE_PREFIXES = ("kokoro:af", "kokoro:bf", "kokoro:jf")  # already female: not converted


def load_pyworld():
    """pyworld's compiled module. pyworld 0.3.5's __init__ imports pkg_resources (only for its
    version string), which setuptools >= 81 no longer ships; the extension itself needs nothing."""
    try:
        import pyworld
        return pyworld
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise SystemExit("world_voices.py needs pyworld: pip install pyworld (see setup.sh)") from e
    for base in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for so in glob.glob(os.path.join(base, "pyworld", "pyworld*.so")):
            loader = importlib.machinery.ExtensionFileLoader("pyworld.pyworld", so)
            mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location("pyworld.pyworld", so,
                                                                                         loader=loader))
            loader.exec_module(mod)
            return mod
    raise SystemExit("world_voices.py needs pyworld: pip install pyworld (see setup.sh)")


def warp(env: np.ndarray, alpha: float) -> np.ndarray:
    """Frequency-warp each frame of a (frames, bins) envelope: new(f) = old(f / alpha)."""
    bins = np.arange(env.shape[1], dtype=np.float64)
    src = np.minimum(bins / alpha, env.shape[1] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, env.shape[1] - 1)
    w = src - lo
    return np.ascontiguousarray(env[:, lo] * (1 - w) + env[:, hi] * w)


def convert(pw, x: np.ndarray, rng: random.Random) -> tuple[np.ndarray, float, float] | None:
    """x (float32, 16 kHz) resynthesized in a female range; (audio, F0 ratio, alpha), None if unvoiced."""
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, C.SR, frame_period=FRAME_MS)
    f0 = pw.stonemask(xd, f0, t, C.SR)
    voiced = f0[f0 > 0]
    if len(voiced) < 10:
        return None
    ratio = float(min(rng.uniform(*F0_TARGET_HZ) / np.median(voiced), MAX_F0_RATIO))
    if ratio < MIN_F0_RATIO:  # already high-pitched (some espeak variants): nothing to convert
        return None
    alpha = rng.uniform(*ALPHA)
    sp = pw.cheaptrick(xd, f0, t, C.SR)
    ap = pw.d4c(xd, f0, t, C.SR)
    y = pw.synthesize(f0 * ratio, warp(sp, alpha), np.clip(warp(ap, alpha), 0.0, 1.0), C.SR, FRAME_MS)
    y = y[:len(x)]
    peak = np.abs(y).max()
    if not np.isfinite(peak) or peak < 1e-4:
        return None
    return (0.9 * y / peak).astype(np.float32), ratio, alpha


def male_items(corpus: C.Corpus, female_espeak: set[str], prefixes: tuple[str, ...] = ()) -> list[dict]:
    """Train items whose voice is not already female (and not a WORLD conversion); with `prefixes`,
    only voices that start with one of them."""
    out = []
    for m in corpus.items:
        v = m["voice"]
        if v.startswith(FEMALE_PREFIXES) or v.startswith("world:"):
            continue
        if prefixes and not v.startswith(prefixes):
            continue
        if v.startswith("espeak:") and v.rpartition("+")[2] in female_espeak:
            continue
        out.append(m)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/demo-data")
    ap.add_argument("--n", type=int, default=3000, help="utterances to convert")
    ap.add_argument("--tag", default="w1", help="shard name tag (a new one to extend)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--shard", type=int, default=500)
    ap.add_argument("--voices", default="",
                    help="comma-separated voice prefixes to convert, e.g. flite:,festival: (default: every male voice)")
    args = ap.parse_args(argv)
    pw = load_pyworld()
    from make_data import espeak_variants  # espeak-ng's variant list (female ones are kept as they are)

    train_dir = os.path.join(args.data, "train")
    corpus = C.Corpus(train_dir)
    prefixes = tuple(p for p in args.voices.split(",") if p)
    items = male_items(corpus, set(espeak_variants(female_only=True)), prefixes)
    if not items:
        which = f" with voices {prefixes}" if prefixes else ""
        raise SystemExit(f"no male training utterances under {train_dir}{which}")
    rng = random.Random(args.seed)
    rng.shuffle(items)
    done, t0 = 0, time.time()
    for k in range(0, min(args.n, len(items)), args.shard):
        name = f"shard_{args.tag}_{k // args.shard:04d}"
        if os.path.exists(os.path.join(train_dir, name + ".jsonl")):
            continue
        wavs, meta, off = [], [], 0
        for m in items[k:min(k + args.shard, args.n)]:
            res = convert(pw, corpus.audio(m), rng)
            if res is None:
                continue
            y, ratio, alpha = res
            wavs.append(np.round(y * 32767).astype(np.int16))
            meta.append({**{f: m[f] for f in ("text", "tts", "synth", "source") if f in m},
                         "voice": f"world:{m['voice']}@f0x{ratio:.2f},a{alpha:.3f}", "offset": off,
                         "length": len(y), "words": m.get("words")})
            off += len(y)
        if wavs:
            C.write_shard(train_dir, name, wavs, meta)
        done += len(meta)
        print(f"{name}: {len(meta)} utts {off / C.SR / 60:.1f} min audio (total {done}, {time.time() - t0:.0f}s)",
              flush=True)


if __name__ == "__main__":
    main()
