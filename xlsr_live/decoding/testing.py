"""Test and benchmark helpers: a tiny bigram ARPA language model written from sentences (no lmplz needed)."""

import collections
import math
from pathlib import Path

BIGRAM_SHARE = 0.8  # probability mass of seen bigrams; the rest backs off to unigrams


def write_arpa(path, sentences) -> Path:
    """Bigram ARPA of `sentences` (lists of words): add-one unigrams, seen bigrams with backoff."""
    unigrams = collections.Counter()
    bigrams = collections.Counter()
    for words in sentences:
        tokens = ["<s>", *words, "</s>"]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens, tokens[1:]))
    vocab = sorted(set(unigrams) | {"<unk>"})
    total = sum(unigrams.values()) + len(vocab)
    p_uni = {w: (unigrams[w] + 1) / total for w in vocab}
    history = collections.Counter()
    for (first, _), count in bigrams.items():
        history[first] += count
    p_bi = {pair: BIGRAM_SHARE * count / history[pair[0]] for pair, count in bigrams.items()}
    backoff = {}
    for first in history:
        seen = [second for (f, second) in bigrams if f == first]
        backoff[first] = (1 - BIGRAM_SHARE) / (1 - sum(p_uni[s] for s in seen if s in p_uni) + 1e-9)
    lines = ["\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(p_bi)}", "", "\\1-grams:"]
    lines.append(f"-99\t<s>\t{math.log10(backoff.get('<s>', 1.0)):.6f}")
    for word in vocab:
        lines.append(f"{math.log10(p_uni[word]):.6f}\t{word}\t{math.log10(backoff.get(word, 1.0)):.6f}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.6f}\t{a} {b}" for (a, b), p in sorted(p_bi.items())]
    lines += ["", "\\end\\", ""]
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
