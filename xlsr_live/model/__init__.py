"""wav2vec2 CTC model runtime: config, modules, checkpoint loading, vocabulary."""

from .checkpoint import CheckpointError, ModelNotFoundError
from .config import UnsupportedModelError, Wav2Vec2Config
from .loader import LoadedModel, load_model, parse_dtype, set_threads
from .tokenizer import CTCVocabulary

__all__ = ["CheckpointError", "CTCVocabulary", "LoadedModel", "ModelNotFoundError",
           "UnsupportedModelError", "Wav2Vec2Config", "load_model", "parse_dtype", "set_threads"]
