"""Tune the LM weights (alpha, beta) on the DEV split: training voices, sentences held out of training
and of the LM text (build_lm.py leaves them out). Never on the held-out voices or the eval split.

  python tune_lm.py                                   # the packaged model, writes language_model/attrs.json
  python tune_lm.py --ckpt /work/demo-runs/run4/ckpt_last.pt --no-write   # look only

Only natural sentences (source "fortune") are used: the random word lists of the dev split have no
grammar for an LM to model, and the held-out evaluation has none either. Logits are computed once;
then a grid over alpha x beta (and, when asked, unk_score_offset and token_min_logp) with pyctcdecode
(beam lmdecode.BEAM_WIDTH unless --beam-width), the lowest WER wins (ties: lower CER). alpha, beta and
unk_score_offset are attrs.json fields and are written; token_min_logp is a decoder option (xlsr_live's
DecoderOptions.token_min_logp) and is only reported.

  python tune_lm.py --no-write --n 200 --unk-offsets -10,-15 --floors -5,-8 --json /tmp/grid.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import lmdecode as L  # noqa: E402
from evaluate import load_model  # noqa: E402
from common import edit_distance  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def dev_logits(model, data, n):
    """(log-probs, reference) for n natural-sentence dev utterances, in a fixed random order."""
    corpus = C.Corpus(data)
    items = [m for m in corpus.items if m.get("source") == "fortune"]
    random.Random(0).shuffle(items)
    out = []
    for m in items[:n]:
        x = torch.from_numpy(C.normalise(corpus.audio(m)))[None]
        with torch.inference_mode():
            lg = model(x).logits[0].numpy()
        out.append((L.log_probs(lg), m["text"]))
    return out


def floats(text: str) -> list[float]:
    """'0.5,0.8' -> [0.5, 0.8]; '' -> []."""
    return [float(v) for v in text.split(",") if v.strip()]


def rates(hyps, refs):
    e = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    we = sum(edit_distance(h.split(), r.split()) for h, r in zip(hyps, refs))
    return e / sum(map(len, refs)), we / sum(len(r.split()) for r in refs)


def grid(lm_dir, data, alphas, betas, unks=(None,), floors=(L.TOKEN_MIN_LOGP,), beam_width=L.BEAM_WIDTH):
    """{(alpha, beta, unk_score_offset, token_min_logp): (cer, wer)} plus the greedy figures under key
    'greedy' (unk_score_offset None: attrs.json's)."""
    refs = [r for _, r in data]
    res = {"greedy": rates([C.decode_ids(lp.argmax(-1)) for lp, _ in data], refs)}
    for a, b, u in itertools.product(alphas, betas, unks):
        dec = L.load_decoder(lm_dir, alpha=a, beta=b, unk_score_offset=u)
        for f in floors:
            t0 = time.time()
            key = (a, b, u, f)
            res[key] = rates([L.decode(dec, lp, beam_width, f) for lp, _ in data], refs)
            print(f"alpha {a:4.2f} beta {b:4.2f} unk {u} floor {f}: CER {100 * res[key][0]:5.1f}"
                  f" WER {100 * res[key][1]:5.1f}  ({time.time() - t0:.0f} s)", flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "../../xlsr_live/models/demo"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--lm", default=None, help="language_model/ folder (default: MODEL/language_model)")
    ap.add_argument("--data", default="/work/demo-data/dev")
    ap.add_argument("--n", type=int, default=100, help="dev utterances")
    ap.add_argument("--alphas", default="0.3,0.5,0.8,1.2")
    ap.add_argument("--betas", default="0,1,2,3")
    ap.add_argument("--unk-offsets", default="",
                    help="unk_score_offset values to try (default: attrs.json's only)")
    ap.add_argument("--floors", default=str(L.TOKEN_MIN_LOGP),
                    help="token_min_logp values to try (reported only: not an attrs.json field)")
    ap.add_argument("--beam-width", type=int, default=L.BEAM_WIDTH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm_dir = args.lm or os.path.join(args.model, "language_model")
    model, name = load_model(args)
    model.eval()
    data = dev_logits(model, args.data, args.n)
    res = grid(lm_dir, data, floats(args.alphas), floats(args.betas), floats(args.unk_offsets) or [None],
               floats(args.floors), args.beam_width)
    best = min((k for k in res if k != "greedy"), key=lambda k: (res[k][1], res[k][0]))
    g = res["greedy"]
    print(f"{name}: dev greedy CER {100 * g[0]:.1f} WER {100 * g[1]:.1f}; best alpha {best[0]} beta {best[1]}"
          f" unk {best[2]} floor {best[3]} (beam {args.beam_width}):"
          f" CER {100 * res[best][0]:.1f} WER {100 * res[best][1]:.1f} ({len(data)} utterances)")
    if not args.no_write:
        path = os.path.join(lm_dir, "attrs.json")
        attrs = json.load(open(path))
        attrs.update(alpha=best[0], beta=best[1])
        if best[2] is not None:
            attrs["unk_score_offset"] = best[2]
        json.dump(attrs, open(path, "w"))
        print("wrote", path)
    if args.json:
        json.dump({"model": name, "n": len(data), "best": best,
                   "beam_width": args.beam_width,
                   "grid": {("greedy" if k == "greedy" else ",".join(map(str, k))): v for k, v in res.items()}},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
