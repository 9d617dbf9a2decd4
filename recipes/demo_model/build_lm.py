"""Build the demo model's word n-gram LM (KenLM's lmplz) in the Hugging Face `language_model/` layout.

  python build_lm.py                       # text -> lmplz -> binary -> xlsr_live/models/demo/language_model/
  python tune_lm.py                        # then alpha/beta on the dev voices (training voices)

Text (Debian packages only, see setup.sh): fortunes (top level, as the training text), the King James
Bible (bible-kjv), WordNet glosses and example sentences (wordnet-base), and the words of
/usr/share/dict/words (wamerican) once each for vocabulary. Every sentence goes through the recipe's
textnorm.normalise (numbers and abbreviations spelled out like the training labels).

Left out (so the held-out figures and `make run` measure recognition, not memory): every sentence
whose label falls in the eval or dev split of textnorm.split_of (dev: alpha/beta are tuned there),
the bundled example's sentences, and any sentence that shares a word 5-gram with one of those.

lmplz is built from the kenlm sdist on PyPI (cmake + Boost, see setup.sh) into --work unless
--lmplz points at one. Output: language_model/{attrs.json, unigrams.txt, lm.bin} (trie, quantised).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import textnorm as T  # noqa: E402

LOG = logging.getLogger("build_lm")
PACKAGE_DIR = os.path.join(HERE, "../../xlsr_live/models/demo")
KENLM_VERSION = "0.3.0"
GUARD_N = 5  # LM sentences sharing a word n-gram of this length with a held-out sentence are dropped


# ---------------------------------------------------------------- lmplz from the sdist
def ensure_kenlm_tools(work: str) -> str:
    """Directory holding lmplz and build_binary, built from the kenlm sdist if not there yet."""
    src = os.path.join(work, f"kenlm-{KENLM_VERSION}")
    bindir = os.path.join(src, "build", "bin")
    if os.path.exists(os.path.join(bindir, "lmplz")) and os.path.exists(os.path.join(bindir, "build_binary")):
        return bindir
    os.makedirs(work, exist_ok=True)
    sdist = os.path.join(work, f"kenlm-{KENLM_VERSION}.tar.gz")
    if not os.path.exists(sdist):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary=kenlm", "--no-deps",
                        f"kenlm=={KENLM_VERSION}", "-d", work], check=True)
    subprocess.run(["tar", "xzf", sdist, "-C", work], check=True)
    build = os.path.join(src, "build")
    os.makedirs(build, exist_ok=True)
    subprocess.run(["cmake", "..", "-DCMAKE_BUILD_TYPE=Release"], cwd=build, check=True)
    subprocess.run(["make", f"-j{os.cpu_count() or 2}", "lmplz", "build_binary"], cwd=build, check=True)
    return bindir


# ---------------------------------------------------------------- text sources
SOURCES = {"fortunes": T.fortune_clauses, "kjv": T.kjv_sentences, "wordnet": T.wordnet_sentences}


# ---------------------------------------------------------------- held-out guard
def ngrams(words, n):
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def heldout_labels(example_txt: str):
    """Labels of every eval- and dev-split sentence of the training text, plus the example's sentences."""
    by = T.build_sentences()
    labels = [lab for sp in ("eval", "dev") for _, lab, src in by[sp] if src == "fortune"]
    # the example.txt is several sentences joined; guard each and the whole
    labels.append(open(example_txt).read().strip())
    return labels


class Guard:
    """Rejects LM sentences that are, or share a word n-gram with, a held-out sentence."""

    def __init__(self, labels, n=GUARD_N):
        self.n = n
        self.labels = set(labels)
        self.grams = set()
        for lab in labels:
            w = lab.split()
            self.grams |= ngrams(w, min(n, len(w)))

    def ok(self, label: str) -> bool:
        if label in self.labels or T.split_of(label) != "train":
            return False
        w = label.split()
        if len(w) < self.n:
            return tuple(w) not in self.grams
        return not (ngrams(w, self.n) & self.grams)


def write_text(path: str, guard: Guard, sources=tuple(SOURCES)):
    """The LM training text (`sources`, then the dictionary words), one normalised sentence per line;
    returns per-source counts."""
    counts = {}
    seen = set()
    with open(path, "w") as f:
        for name in sources:
            gen = SOURCES[name]
            kept = dropped = 0
            for raw in gen():
                r = T.normalise(raw)
                if r is None or r[1] in seen:
                    continue
                seen.add(r[1])
                if guard.ok(r[1]):
                    f.write(r[1] + "\n"); kept += 1
                else:
                    dropped += 1
            counts[name] = {"sentences": kept, "held_out_or_overlapping": dropped}
        words = sorted(set(T.dict_words()))
        for w in words:
            f.write(w + "\n")
        counts["dict_words"] = len(words)
    return counts


# ---------------------------------------------------------------- lmplz / build_binary
def build(bindir, text, arpa, binary, order, prune, qbits):
    mem = "25%"
    with open(text) as fin, open(arpa, "w") as fout:
        subprocess.run([os.path.join(bindir, "lmplz"), "-o", str(order), "-S", mem, "-T", os.path.dirname(arpa),
                        "--discount_fallback", "--prune", *prune.split()], stdin=fin, stdout=fout, check=True)
    q = ["-q", str(qbits), "-b", str(qbits)] if qbits else []
    subprocess.run([os.path.join(bindir, "build_binary"), "-a", "22", *q, "trie", arpa, binary], check=True)


def arpa_unigrams(arpa: str):
    """The words of the ARPA's 1-gram section (what pyctcdecode's unigrams.txt lists)."""
    words, inside = [], False
    for ln in open(arpa, encoding="utf-8"):
        if ln.startswith("\\1-grams:"):
            inside = True
        elif inside and ln.startswith("\\"):
            break
        elif inside and ln.strip():
            w = ln.split("\t")[1].strip()
            if w not in ("<s>", "</s>", "<unk>"):
                words.append(w)
    return sorted(words)


def write_layout(out_dir, binary, unigrams, alpha, beta):
    """language_model/ as pyctcdecode's LanguageModel.save_to_dir writes it (exactly three files)."""
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    os.replace(binary, os.path.join(out_dir, "lm.bin"))
    with open(os.path.join(out_dir, "unigrams.txt"), "w") as f:
        f.write("\n".join(unigrams) + "\n")
    with open(os.path.join(out_dir, "attrs.json"), "w") as f:
        json.dump({"alpha": alpha, "beta": beta, "unk_score_offset": -10.0, "score_boundary": True}, f)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/work/demo-lm", help="sources, text, ARPA (large files)")
    ap.add_argument("--package", default=PACKAGE_DIR, help="model dir; the LM goes to its language_model/")
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--prune", default="0 1 1 1", help="lmplz --prune thresholds per order")
    ap.add_argument("--qbits", type=int, default=8, help="build_binary -q/-b bits (0: no quantisation)")
    ap.add_argument("--sources", default=",".join(SOURCES), help=f"text sources, of {', '.join(SOURCES)}")
    ap.add_argument("--alpha", type=float, default=0.5, help="until tune_lm.py writes tuned values")
    ap.add_argument("--beta", type=float, default=1.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bindir = ensure_kenlm_tools(args.work)
    text = os.path.join(args.work, "lm_text.txt")
    guard = Guard(heldout_labels(os.path.join(args.package, "example.txt")))
    sources = [name for name in args.sources.split(",") if name]
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise ValueError(f"--sources: {unknown} not among {list(SOURCES)}")
    counts = write_text(text, guard, sources)
    LOG.info("text: %s", json.dumps(counts))
    arpa, binary = os.path.join(args.work, f"lm{args.order}.arpa"), os.path.join(args.work, "lm.bin")
    build(bindir, text, arpa, binary, args.order, args.prune, args.qbits)
    out = os.path.join(args.package, "language_model")
    write_layout(out, binary, arpa_unigrams(arpa), args.alpha, args.beta)
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    LOG.info("wrote %s: %s", out, json.dumps(sizes))
    json.dump({"text": counts, "sources": sources, "order": args.order, "prune": args.prune, "qbits": args.qbits, "sizes": sizes},
              open(os.path.join(args.work, "build_lm.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
