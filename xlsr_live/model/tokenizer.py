"""Wav2Vec2CTCTokenizer conventions: vocab.json ids, pad = CTC blank, `|` = word delimiter.

Text follows the transformers ASR pipeline's `tokenizer.decode(ids)` of the frame argmax: repeats
are grouped, the pad (blank) dropped, the delimiter becomes a space, `do_lower_case` lower-cases
the output. Unlike the pipeline, special tokens (`<unk>`, `<s>`, `</s>`, additional special
tokens) never appear: after grouping they produce no text, like the blank. (transformers'
`skip_special_tokens=True` would drop them before grouping, merging `a <pad> a` into `a`.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from .checkpoint import CheckpointError
from .config import UnsupportedModelError

NAMED_SPECIALS = (("pad_token", "<pad>"), ("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"))
EXTRA_SPECIALS = ("additional_special_tokens", "extra_special_tokens")  # transformers 4.x / 5.x names


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens as strings or AddedToken dicts."""
    if isinstance(value, Mapping):
        return value.get("content")
    return value


def is_multilingual(vocab: Mapping[str, Any]) -> bool:
    """True for a vocab.json nested by language (MMS: {"eng": {token: id}, "fra": {...}})."""
    return bool(vocab) and all(isinstance(v, Mapping) for v in vocab.values())


def select_language(vocab: Mapping[str, Any], language: str | None, source: str) -> Mapping[str, Any]:
    """The token table of `language` from a vocabulary nested by language; a flat one as it is."""
    if not is_multilingual(vocab):
        return vocab
    if language is None:
        raise UnsupportedModelError(
            f"{source}: one vocabulary per language ({len(vocab)}: {', '.join(sorted(vocab)[:8])}"
            f"{' ...' if len(vocab) > 8 else ''}); choose one with language=LANG (--language)")
    if language not in vocab:
        raise ValueError(f"language {language!r} is not in {source}; it has {', '.join(sorted(vocab)[:20])}"
                         f"{' ...' if len(vocab) > 20 else ''}")
    return vocab[language]


@dataclasses.dataclass(frozen=True)
class CTCVocabulary:
    """Labels of the CTC output layer and the special tokens among them."""

    labels: tuple[str, ...]  # token text by output id
    blank_id: int
    word_delimiter: str = "|"
    unk_token: str | None = "<unk>"
    special_tokens: frozenset[str] = frozenset()
    do_lower_case: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def delimiter_id(self) -> int | None:
        """Output id of the word delimiter, or None if the vocabulary has none."""
        try:
            return self.labels.index(self.word_delimiter)
        except ValueError:
            return None

    @property
    def has_word_boundaries(self) -> bool:
        """False for vocabularies without a delimiter or space (character languages: each token is a word)."""
        return any(not self.is_silent(i) and self.token_text(i).isspace() for i in range(len(self.labels)))

    def is_silent(self, token_id: int) -> bool:
        """True for ids that never produce text: the blank and every special token but the delimiter."""
        token = self.labels[token_id]
        return token_id == self.blank_id or (token in self.special_tokens and token != self.word_delimiter)

    def token_text(self, token_id: int) -> str:
        """Text of one spoken token: the delimiter becomes a space; lower-cased if `do_lower_case`."""
        token = self.labels[token_id]
        if token == self.word_delimiter:
            return " "
        return token.lower() if self.do_lower_case else token

    def decoder_labels(self) -> list[str]:
        """Labels as pyctcdecode wants them: silent ids "", delimiter " ", others their text."""
        return ["" if self.is_silent(i) else self.token_text(i) for i in range(len(self.labels))]

    def encode(self, text: str) -> list[int]:
        """Characters -> ids (spaces to the delimiter); unknown characters map to unk."""
        index = {t: i for i, t in enumerate(self.labels)}
        unk = index.get(self.unk_token) if self.unk_token else None
        if self.do_lower_case:
            text = text.lower()
        ids = []
        for char in " ".join(text.split()):
            token = self.word_delimiter if char == " " else char
            if token in index:
                ids.append(index[token])
            elif unk is not None:
                ids.append(unk)
        return ids

    @classmethod
    def from_directory(cls, directory: Path, language: str | None = None) -> "CTCVocabulary":
        """Read vocab.json and tokenizer_config.json (optional) from a checkpoint directory.

        A vocabulary nested by language (MMS) needs `language` or the tokenizer's `target_lang`.
        """
        vocab_path = directory / "vocab.json"
        if not vocab_path.is_file():
            raise CheckpointError(f"{vocab_path}: no such file (the Wav2Vec2CTCTokenizer vocabulary)")
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        config_path = directory / "tokenizer_config.json"
        tok_config = {}
        if config_path.is_file():
            tok_config = json.loads(config_path.read_text(encoding="utf-8"))
        language = language or tok_config.get("target_lang")
        return cls.from_mappings(select_language(vocab, language, str(vocab_path)), tok_config, str(vocab_path))

    @classmethod
    def from_mappings(
        cls, vocab: Mapping[str, Any], tok_config: Mapping[str, Any], source: str = "vocab.json"
    ) -> "CTCVocabulary":
        """Build from the parsed vocab.json and tokenizer_config.json."""
        if is_multilingual(vocab):
            raise UnsupportedModelError(
                f"{source}: a multilingual vocabulary (one table per language: "
                f"{sorted(vocab)[:5]}...) is not supported; supported: one flat token->id table"
            )
        if not vocab or not all(isinstance(v, int) for v in vocab.values()):
            raise ValueError(f"{source}: expected a JSON object mapping tokens to integer ids")
        ids = sorted(vocab.values())
        if ids != list(range(len(ids))):
            raise ValueError(f"{source}: token ids are not 0..{len(ids) - 1} without gaps")
        labels = [""] * len(ids)
        for token, token_id in vocab.items():
            labels[token_id] = token
        pad = _token_text(tok_config.get("pad_token", "<pad>"))
        if pad not in vocab:
            raise ValueError(f"{source}: the pad token {pad!r} (CTC blank) is not in the vocabulary")
        specials = {_token_text(tok_config.get(k, d)) for k, d in NAMED_SPECIALS}
        for key in EXTRA_SPECIALS:
            extra = tok_config.get(key) or ()
            specials.update(_token_text(t) for t in (extra.values() if isinstance(extra, Mapping) else extra))
        return cls(
            labels=tuple(labels),
            blank_id=vocab[pad],
            word_delimiter=tok_config.get("word_delimiter_token", "|") or "|",
            unk_token=_token_text(tok_config.get("unk_token", "<unk>")),
            special_tokens=frozenset(t for t in specials if t),
            do_lower_case=bool(tok_config.get("do_lower_case", False)),
        )
