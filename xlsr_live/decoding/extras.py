"""Optional packages of beam search and language models: imported where needed, errors name the extra."""

from __future__ import annotations

# pyctcdecode 0.5.0's metadata pins numpy<2; it runs on numpy 2 (docs/decoding.md), so it is
# installed without its dependencies, beside the extra that carries the one it needs
BEAM_INSTALL = 'pip install "xlsr-live[beam]" && pip install --no-deps pyctcdecode==0.5.0'
LM_INSTALL = 'pip install "xlsr-live[lm]" && pip install --no-deps pyctcdecode==0.5.0'


class MissingExtraError(ImportError, ValueError):
    """An optional package needed for the requested decoding is not installed (names the extra)."""


def import_pyctcdecode():
    """The pyctcdecode module, or MissingExtraError naming the install line."""
    try:
        import pyctcdecode
    except ImportError as exc:
        raise MissingExtraError(f"beam search needs pyctcdecode, which is not installed: {BEAM_INSTALL}") from exc
    return pyctcdecode


def require_kenlm() -> None:
    """MissingExtraError naming the `lm` extra unless the kenlm module imports."""
    try:
        import kenlm  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(f"a KenLM language model needs the kenlm module, which is not installed: "
                                f"{LM_INSTALL}") from exc
