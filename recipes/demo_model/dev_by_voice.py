"""Greedy CER on the dev split (training voices, dev sentences) by voice family: is a held-out voice
hard because it is unlike the training voices, or because the model is weak on that kind of voice?

  python dev_by_voice.py                                   # the packaged model
  python dev_by_voice.py --model /work/demo-runs/gpu1_best_s2000.pt --n 40

espeak-ng voices are grouped by variant (en, en-us, en-gb-x-rp, ...), Kokoro by its two-letter
accent-and-sex prefix, the others by synthesizer. Prints one line per family: utterances, CER %.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
from types import SimpleNamespace

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common as C  # noqa: E402
import xlsr_backend  # noqa: E402
from train import dev_cer  # noqa: E402


def family(voice: str) -> str:
    """'espeak:en-us+f3' -> 'espeak:en-us'; 'kokoro:af_bella' -> 'kokoro:af'; 'flite:kal' -> 'flite'."""
    base = voice.split("+")[0]
    if base.startswith("espeak:"):
        return base
    synth, _, name = base.partition(":")
    return f"{synth}:{name[:2]}" if synth == "kokoro" else synth


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "../../xlsr_live/models/demo"),
                    help="an exported model folder or a train.py checkpoint / weights file")
    ap.add_argument("--data", default="/work/demo-data/dev")
    ap.add_argument("--n", type=int, default=40, help="utterances per family at most")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = xlsr_backend.XlsrCTC(C.config_dict(num_hidden_layers=C.init_depth(args.model)))
    xlsr_backend.load_init(model, args.model)
    model.eval()
    corpus = C.Corpus(args.data)
    families = collections.defaultdict(list)
    for item in corpus.items:
        families[family(item["voice"])].append(item)
    for fam in sorted(families):
        items = families[fam][:args.n]
        cer = dev_cer(model, SimpleNamespace(items=items, audio=corpus.audio), "cpu", n=len(items))[0]
        print(f"{fam:28s} {len(items):4d} utterances  CER {100 * cer:5.1f} %")


if __name__ == "__main__":
    main()
