"""Evaluate the demo model on held-out voices x held-out sentences, clean and degraded.

  python evaluate.py --model ../../xlsr_live/models/demo --json /work/demo-runs/eval.json
  python evaluate.py --ckpt /work/demo-runs/run1/ckpt_last.pt --limit 30   # quick look

Held-out voices (never in training): flite slt, espeak-ng en-029, festival
cmu_us_slt_arctic_hts; sentences from the eval split of textnorm (never trained on).
Each utterance is normalised as a whole (do_normalize) and greedy CTC-decoded, and on
--lm-conditions also beam-searched with the model's language_model/ folder (pyctcdecode + KenLM;
--decoder greedy turns it off; a --ckpt uses --lm DIR, e.g. xlsr_live/models/demo/language_model).
Conditions are deterministic (seeded per utterance); clean_chunked runs the clean audio
window by window (per-window normalisation, stride frames dropped) like a streaming engine. Prints a CER/WER table per
voice and condition, an offline real-time factor, and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib

import numpy as np

# libgomp: sleep instead of spinning while waiting; on shared, busy cores a spinning
# 2-thread team ran ~3x slower than 1 thread (measured here)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import lmdecode as L  # noqa: E402
from common import edit_distance  # noqa: E402

CONDITIONS = ["clean", "white_20db", "white_10db", "pink_10db", "babble_10db", "reverb", "telephone",
              "clean_chunked"]


def chunked_logits(model, x, chunk_s, stride_s):
    """Window-by-window inference as transformers' chunked CTC pipeline does it: windows of
    chunk_s, stepping by chunk_s - 2 * stride_s, each window normalised on its own, stride
    frames dropped (none on the left of the first / right of the last window)."""
    chunk = int(round(chunk_s * C.SR / 320)) * 320
    stride = int(round(stride_s * C.SR / 320)) * 320
    step = chunk - 2 * stride
    out = []
    for start in range(0, len(x), step):
        end = start + chunk
        w = x[start:end]
        sl = 0 if start == 0 else stride
        last = end >= len(x)
        sr = 0 if last else stride
        if len(w) > sl:
            with torch.inference_mode():
                lg = model(torch.from_numpy(C.normalise(w))[None]).logits[0]
            a, b = int(round(sl / 320)), lg.shape[0] - int(round(sr / 320))
            out.append(lg[a:b])
        if last:
            break
    return torch.cat(out)


def degrade(x, cond, seed, babble_src):
    rng = np.random.default_rng(seed)
    if cond == "clean":
        return x
    if cond.startswith("white_"):
        return C.add_noise(x, rng.standard_normal(len(x)).astype(np.float32), float(cond[6:-2]))
    if cond.startswith("pink_"):
        return C.add_noise(x, C.pink_noise(len(x), rng), float(cond[5:-2]))
    if cond.startswith("babble_"):
        # babble from OTHER held-out-voice eval utterances (never training audio)
        noise = np.zeros(len(x), np.float32)
        for k in rng.choice(len(babble_src), 4, replace=False):
            b = babble_src[k]
            b = np.resize(b, len(x))
            noise += np.roll(b, int(rng.integers(len(x))))
        return C.add_noise(x, noise, float(cond[7:-2]))
    if cond == "reverb":
        return C.reverb(x, rng, rt60=0.5)
    if cond == "telephone":
        return C.telephone(x, None)
    raise ValueError(cond)


def load_model(args):
    from transformers import Wav2Vec2ForCTC

    if args.ckpt:
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        model = Wav2Vec2ForCTC(C.model_config(**ck.get("config_over", {})))
        model.load_state_dict(ck["model"])
        return model, f"{args.ckpt} (step {ck['step']})"
    return Wav2Vec2ForCTC.from_pretrained(args.model), args.model


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(here, "../../xlsr_live/models/demo"))
    ap.add_argument("--ckpt", default=None, help="evaluate a training checkpoint instead")
    ap.add_argument("--data", default="/work/demo-data/eval")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--limit", type=int, default=0, help="utterances per voice (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-s", type=float, default=4.0, help="clean_chunked: window length")
    ap.add_argument("--stride-s", type=float, default=1.0, help="clean_chunked: stride per side")
    ap.add_argument("--decoder", choices=["lm", "greedy"], default="lm",
                    help="lm: greedy AND beam search with the model's language_model/ (or --lm); greedy only")
    ap.add_argument("--lm", default=None, help="language_model/ folder (default: MODEL/language_model;"
                    " a --ckpt has none unless given)")
    ap.add_argument("--lm-conditions", default="clean,white_10db,clean_chunked",
                    help="conditions also decoded with the LM (beam search is slower)")
    ap.add_argument("--beam-width", type=int, default=L.BEAM_WIDTH)
    ap.add_argument("--json", default=None)
    ap.add_argument("--show", type=int, default=2, help="example hypotheses per voice")
    return ap.parse_args()


def utterance_logits(model, x, cond, seed, args, babble_src):
    """Frame logits (T, V) of one utterance under one condition, and the forward time (clean pass)."""
    if cond == "clean_chunked":
        return chunked_logits(model, x, args.chunk_s, args.stride_s).numpy(), 0.0, 0.0
    x = C.normalise(degrade(x, cond, seed, babble_src))
    t0 = time.perf_counter()
    with torch.inference_mode():
        lg = model(torch.from_numpy(x)[None]).logits[0].numpy()
    return lg, time.perf_counter() - t0, len(x) / C.SR


def score(model, corpus, items, voice, cond, args, babble_src, decoder=None):
    """CER/WER of one voice under one condition (greedy, and with the LM when `decoder` is given);
    also example hypotheses and the clean pass's timing (forward; LM decoding separately)."""
    tot = {"greedy": [0, 0, 0, 0], "lm": [0, 0, 0, 0]}
    examples, fwd_t, audio_t, lm_t = [], 0.0, 0.0, 0.0
    for m in items:
        seed = zlib.crc32((m["text"] + voice + cond).encode())
        lg, f, a = utterance_logits(model, corpus.audio(m), cond, seed, args, babble_src)
        fwd_t, audio_t = fwd_t + f, audio_t + a
        ref = m["text"]
        hyps = {"greedy": C.decode_ids(lg.argmax(-1))}
        if decoder is not None:
            t0 = time.perf_counter()
            hyps["lm"] = L.decode(decoder, L.log_probs(lg), args.beam_width)
            lm_t += time.perf_counter() - t0
        for k, hyp in hyps.items():
            t = tot[k]
            t[0] += edit_distance(hyp, ref); t[1] += len(ref)
            t[2] += edit_distance(hyp.split(), ref.split()); t[3] += len(ref.split())
        if len(examples) < args.show:
            examples.append({"ref": ref, **{f"hyp_{k}": h for k, h in hyps.items()}})
    stats = {}
    for k in hyps:
        e, c, we, w = tot[k]
        stats[k] = {"cer": e / max(1, c), "wer": we / max(1, w), "n": len(items), "chars": c, "words": w}
        print(f"  {voice:34s} {cond:12s} {k:6s} CER {100 * stats[k]['cer']:6.2f}  WER {100 * stats[k]['wer']:6.2f}",
              flush=True)
    return stats, examples, (fwd_t, audio_t, lm_t)


def print_table(res, voices, conds, name):
    """The markdown table of CER % / WER % per voice and condition, with the mean row."""
    print(f"\nmodel: {name}")
    print("| voice | " + " | ".join(conds) + " |")
    print("|---|" + "---|" * len(conds))
    for v in voices:
        print(f"| {v} | " + " | ".join(f"{100 * res[v][k]['cer']:.1f} / {100 * res[v][k]['wer']:.1f}"
                                      for k in conds) + " |")
    avg = {k: {"cer": float(np.mean([res[v][k]["cer"] for v in voices])),
               "wer": float(np.mean([res[v][k]["wer"] for v in voices]))} for k in conds}
    print("| mean | " + " | ".join(f"{100 * avg[k]['cer']:.1f} / {100 * avg[k]['wer']:.1f}" for k in conds)
          + " |")
    print("(cells: CER % / WER %)")
    return avg


def lm_decoder(args):
    """pyctcdecode decoder of the model's language_model/ folder (or --lm), None for greedy only."""
    lm_dir = args.lm or (None if args.ckpt else os.path.join(args.model, "language_model"))
    if args.decoder == "greedy" or not lm_dir or not os.path.isdir(lm_dir):
        return None, None
    return L.load_decoder(lm_dir), lm_dir


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    model, name = load_model(args)
    model.eval()
    decoder, lm_dir = lm_decoder(args)
    corpus = C.Corpus(args.data)
    voices = sorted(set(m["voice"] for m in corpus.items))
    items = {v: [m for m in corpus.items if m["voice"] == v] for v in voices}
    if args.limit:
        items = {v: ms[:args.limit] for v, ms in items.items()}
    babble_src = [corpus.audio(m) for m in corpus.items[-40:]]
    conds = args.conditions.split(",")
    lm_conds = set(args.lm_conditions.split(",")) if decoder is not None else set()
    res, examples = {}, {}
    fwd_t = audio_t = lm_t = 0.0
    for v in voices:
        for cond in conds:
            stats, shown, (f, a, t) = score(model, corpus, items[v], v, cond, args, babble_src,
                                            decoder if cond in lm_conds else None)
            for k, st in stats.items():
                res.setdefault(k, {}).setdefault(v, {})[cond] = st
            if cond == "clean":
                examples[v], fwd_t, audio_t, lm_t = shown, fwd_t + f, audio_t + a, lm_t + t
    avg = {"greedy": print_table(res["greedy"], voices, conds, name + " [greedy]")}
    if "lm" in res:
        lconds = [c for c in conds if c in lm_conds]
        avg["lm"] = print_table(res["lm"], voices, lconds, f"{name} [LM {lm_dir}, beam {args.beam_width}]")
    rtf = fwd_t / max(audio_t, 1e-9)
    print(f"offline RTF (clean pass, whole utterances, {args.threads} threads): {rtf:.4f}"
          + (f"; with LM beam search {(fwd_t + lm_t) / max(audio_t, 1e-9):.4f}" if lm_t else ""))
    for v, ex in examples.items():
        for e in ex:
            print(f"[{v}] REF: {e['ref']}\n" + "\n".join(f"{' ' * (len(v) + 3)}{k[4:].upper():6s}: {h}"
                                                      for k, h in e.items() if k.startswith("hyp_")))
    if args.json:
        json.dump({"model": name, "lm": lm_dir, "results": res, "mean": avg, "rtf": rtf,
                   "rtf_lm": (fwd_t + lm_t) / max(audio_t, 1e-9) if lm_t else None, "examples": examples,
                   "conditions": conds, "time": time.strftime("%Y-%m-%d %H:%M:%S")},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
