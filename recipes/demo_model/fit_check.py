"""How well a model fits its own training data: CTC loss and greedy CER on training examples built
as train.py builds them, without augmentation and with it (same examples, same seed).

  python fit_check.py --model /work/demo-runs/run19_avg7_s15.pt --n 120 --rooms --vtlp-max 1.25 \
      --codecs 0.1 --voice-weights "kokoro=6,kokoro:af=10,kokoro:bf=10,piper=2,world=2.5,espeak=1.5"

Training examples with a greedy CER close to the dev CER (held-out sentences of the same voices)
mean the model underfits; a much lower one means it memorises its training sentences.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import examples as E  # noqa: E402
import xlsr_backend  # noqa: E402
from train import add_data_args  # noqa: E402


def fit(model, builder, n: int, aug: float, max_s: float = 6.0) -> dict:
    """Median CTC loss (per label, as trained) and greedy CER over n examples from `builder`."""
    losses, errors, chars = [], 0, 0
    for _ in range(n):
        x, text = builder.example(max_s, aug, p_empty=0.0)
        with torch.inference_mode():
            out = model(torch.from_numpy(x)[None], labels=torch.tensor([C.encode(text)]))
        losses.append(float(out.loss))
        errors += C.edit_distance(C.decode_ids(out.logits.argmax(-1)[0].numpy()), text)
        chars += len(text)
    return {"aug": aug, "n": n, "median_loss": statistics.median(losses), "cer": errors / max(1, chars)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "../../xlsr_live/models/demo"),
                    help="an exported model folder or a train.py checkpoint / weights file")
    ap.add_argument("--data", default="/work/demo-data/train")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    add_data_args(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = xlsr_backend.XlsrCTC(C.config_dict(num_hidden_layers=C.init_depth(args.model)))
    xlsr_backend.load_init(model, args.model)
    model.eval()
    corpus = C.Corpus(args.data)
    extra = E.Augment(rooms=args.rooms, vtlp_max=args.vtlp_max, codecs=args.codecs,
                      voice_weights=args.voice_weights)
    for aug in (0.0, 1.0):
        r = fit(model, E.Builder(corpus, random.Random(args.seed), extra), args.n, aug)
        print(f"augmentation {aug:.0f}: median CTC loss {r['median_loss']:.3f}, greedy CER {100 * r['cer']:.1f} % "
              f"({r['n']} training examples)", flush=True)


if __name__ == "__main__":
    main()
