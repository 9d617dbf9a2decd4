"""Training data for a GPU machine without synthesizers or network: Opus here, shards there.

  python gpu_pack.py pack [--seed N]      # here: /work/demo-data -> recipes/demo_model/gpu_data/ (~35 MB)
  python gpu_pack.py unpack --dst DIR     # there (gpu_train.sh does it): gpu_data/ -> DIR/{train,dev}

pack draws --hours of training utterances at random from every shard tag (all training voices,
never a held-out one) plus the whole dev split, and writes them as Ogg/Opus (libsndfile through
soundfile, about 13.6 kbit/s at 16 kHz: greedy dev CER +0.6 points for a model not trained on it)
with the manifests (word spans kept), and downloads the CPython 3.12 wheels the trainer needs beyond
the stock image (soundfile, soxr, cffi, pycparser, pyroomacoustics) into gpu_data/wheels.
gpu_data/ is git-ignored and travels with the working tree as a carried path (the whole tree must
stay under 64 MiB). unpack decodes the shards in parallel (one process per core).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SR = 16000
HELDOUT = {"flite:slt", "festival:cmu_us_slt_arctic_hts"}
# what the trainer needs beyond the stock image (which has torch, numpy, scipy, Cython, safetensors)
WHEELS = ["soundfile", "soxr", "cffi", "pycparser", "pyroomacoustics"]
OPUS_LEVEL = 0.97  # libsndfile compression level for Opus: 0.97 is about 13.6 kbit/s at 16 kHz (0.95: 18.5)


def heldout(voice: str) -> bool:
    return voice in HELDOUT or voice.startswith("espeak:en-029")


def manifest(split_dir):
    """(item, npy path) of every finished shard of one split."""
    out = []
    for js in sorted(glob.glob(os.path.join(split_dir, "*.jsonl"))):
        out += [(json.loads(ln), js[:-6] + ".npy") for ln in open(js)]
    return out


def write_shards(items, dst, prefix, shard_s=1200.0):
    """Concatenate items into Opus shards of about shard_s seconds; returns the total seconds."""
    import soundfile as sf

    os.makedirs(dst, exist_ok=True)
    arrays, k, total = {}, 0, 0.0
    while items:
        part, secs = [], 0.0
        while items and secs < shard_s:
            part.append(items.pop()); secs += part[-1][0]["length"] / SR
        wavs, meta, off = [], [], 0
        for m, npy in part:
            a = arrays.setdefault(npy, np.load(npy, mmap_mode="r"))
            wavs.append(np.asarray(a[m["offset"]:m["offset"] + m["length"]]))
            meta.append(dict(m, offset=off)); off += m["length"]
        name = os.path.join(dst, f"{prefix}_{k:04d}")
        sf.write(name + ".ogg", np.concatenate(wavs), SR, format="OGG", subtype="OPUS",
                 compression_level=OPUS_LEVEL)
        with open(name + ".jsonl", "w") as f:
            f.writelines(json.dumps(m) + "\n" for m in meta)
        k += 1; total += secs
    return total


def pack(args):
    rng = random.Random(args.seed)
    train = [x for x in manifest(os.path.join(args.data, "train")) if not heldout(x[0]["voice"])]
    rng.shuffle(train)
    chosen, secs = [], 0.0
    for x in train:
        if secs >= args.hours * 3600:
            break
        chosen.append(x); secs += x[0]["length"] / SR
    t = write_shards(chosen, os.path.join(args.out, "train"), "shard_gpu")
    d = write_shards(manifest(os.path.join(args.data, "dev")), os.path.join(args.out, "dev"), "shard_gpu")
    wheels = os.path.join(args.out, "wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", "3.12",
                    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_27_x86_64", "--platform", "manylinux_2_28_x86_64",
                    "--implementation", "cp", "--no-deps", "-d", wheels, *WHEELS], check=True)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(args.out, "**", "*"), recursive=True)
               if os.path.isfile(p))
    print(f"packed {t / 3600:.2f} h train + {d / 3600:.2f} h dev into {args.out}: {size / 1e6:.1f} MB")


def unpack_one(ogg: str, dst: str) -> float:
    """Decode one Opus shard to dst/<name>.npy (int16) beside its manifest; returns its seconds."""
    import soundfile as sf

    base = os.path.join(dst, os.path.basename(ogg)[:-4])
    a, sr = sf.read(ogg, dtype="int16")
    if sr != SR:
        raise ValueError(f"{ogg}: sample rate {sr}, expected {SR}")
    np.save(base + ".npy", a)
    shutil.copyfile(ogg[:-4] + ".jsonl", base + ".jsonl")
    return len(a) / SR


def unpack(args):
    from concurrent.futures import ProcessPoolExecutor

    jobs = []
    for split in ("train", "dev"):
        dst = os.path.join(args.dst, split)
        os.makedirs(dst, exist_ok=True)
        jobs += [(ogg, dst) for ogg in sorted(glob.glob(os.path.join(args.src, split, "*.ogg")))]
    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        secs = sum(pool.map(unpack_one, *zip(*jobs))) if jobs else 0.0
    print(f"unpacked {len(jobs)} shards, {secs / 3600:.2f} h, into {args.dst}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pack", "unpack"])
    ap.add_argument("--data", default="/work/demo-data", help="pack: the recipe's data root")
    ap.add_argument("--out", default=os.path.join(HERE, "gpu_data"), help="pack: destination")
    ap.add_argument("--hours", type=float, default=4.6, help="pack: training hours (4.6 fits 64 MiB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--src", default=os.path.join(HERE, "gpu_data"), help="unpack: the packed folder")
    ap.add_argument("--dst", default="/tmp/demo-data", help="unpack: data root for train.py --data")
    args = ap.parse_args(argv)
    pack(args) if args.mode == "pack" else unpack(args)


if __name__ == "__main__":
    main()
