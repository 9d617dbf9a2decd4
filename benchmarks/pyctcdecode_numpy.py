"""pyctcdecode 0.5.0 on numpy 2: the same decodes under two environments must give the same beams.

pyctcdecode's metadata pins numpy<2 (docs/decoding.md). Run this script in an environment with
numpy 1 and in one with numpy 2 (each with pyctcdecode, pygtrie and kenlm), then compare:

    python benchmarks/pyctcdecode_numpy.py                 # writes results/pyctcdecode_numpy<major>.json
    python benchmarks/pyctcdecode_numpy.py --compare benchmarks/results/pyctcdecode_numpy1.json \\
        benchmarks/results/pyctcdecode_numpy2.json

Inputs: three scripted utterances at three noise levels and 300 frames of flat random logits,
beam width 16, without and with hotwords, without and with a bigram ARPA model (kenlm).
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LABELS = [""] + [" "] + list(string.ascii_lowercase) + ["'"]
TEXT = "the quick brown fox jumps over the lazy dog"
CORPUS = ["the quick brown fox jumps over the lazy dog", "the quick brown fox", "the lazy dog and then the cat",
          "the cat sat on the mat", "the dog sat"]


def _inputs() -> list[np.ndarray]:
    """Log-probabilities (frames, labels) of fixed seeded inputs."""
    rng = np.random.default_rng(0)
    ids = [i for char in TEXT for i in [LABELS.index(char)] * 3 + [0]]
    inputs = []
    for noise in (0.5, 1.5, 3.0):
        logits = rng.standard_normal((len(ids), len(LABELS))) * noise
        logits[np.arange(len(ids)), ids] += 4.0
        inputs.append(logits)
    inputs.append(rng.standard_normal((300, len(LABELS))))
    return [(x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(np.float32) for x in inputs]


def decode_all() -> dict:
    """Every beam of every case: text, word frame spans, logit and LM scores."""
    from pyctcdecode import build_ctcdecoder

    sys.path.insert(0, str(ROOT))
    from xlsr_live.decoding.testing import write_arpa

    arpa = write_arpa(Path(tempfile.mkdtemp()) / "bigram.arpa", [s.split() for s in CORPUS])
    decoders = {"nolm": build_ctcdecoder(LABELS), "lm": build_ctcdecoder(LABELS, str(arpa), alpha=0.5, beta=1.0)}
    from importlib.metadata import packages_distributions, version

    kenlm_dist = packages_distributions().get("kenlm", ["?"])[0]
    out = {"numpy": np.__version__, "python": sys.version.split()[0],
           "kenlm": f"{kenlm_dist} {version(kenlm_dist)}", "cases": {}}
    for name, decoder in decoders.items():
        for index, logits in enumerate(_inputs()):
            for hotwords in (None, ["fox", "lazy dog"]):
                beams = decoder.decode_beams(logits, beam_width=16, hotwords=hotwords)
                out["cases"][f"{name}-{index}-{'hot' if hotwords else 'plain'}"] = [
                    [b[0], [[w, int(s), int(e)] for w, (s, e) in b[2]], round(float(b[3]), 6), round(float(b[4]), 6)]
                    for b in beams]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, metavar="JSON", help="compare two result files instead")
    args = parser.parse_args()
    if args.compare:
        first, second = (json.loads(Path(p).read_text()) for p in args.compare)
        same = [k for k in first["cases"] if first["cases"][k] == second["cases"].get(k)]
        beams = sum(len(v) for v in first["cases"].values())
        print(f"numpy {first['numpy']} ({first.get('kenlm')}) vs {second['numpy']} ({second.get('kenlm')}): {len(same)}/{len(first['cases'])} cases identical "
              f"({beams} beams: texts, word frames, logit and LM scores)")
        return 0 if len(same) == len(first["cases"]) == len(second["cases"]) else 1
    result = decode_all()
    path = ROOT / "benchmarks" / "results" / f"pyctcdecode_numpy{result['numpy'].split('.')[0]}.json"
    path.write_text(json.dumps(result, indent=0) + "\n")
    print(f"{path}: numpy {result['numpy']}, python {result['python']}, {result['kenlm']}, {len(result['cases'])} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
