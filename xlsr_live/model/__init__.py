"""CTC speech model runtime (wav2vec2 family): config, blocks, encoder, checkpoint loading, vocabulary."""

from .checkpoint import CheckpointError, ModelNotFoundError
from .config import ModelConfig, UnsupportedModelError, Wav2Vec2Config
from .loader import LoadedModel, load_model, parse_dtype, set_threads
from .tokenizer import CTCVocabulary

__all__ = ["CheckpointError", "CTCVocabulary", "LoadedModel", "ModelConfig", "ModelNotFoundError",
           "UnsupportedModelError", "Wav2Vec2Config", "load_model", "parse_dtype", "set_threads"]
