"""Stage 2, audio -> text: one backend per module, chosen by name from AUDIO_TEXTERS.

Importing this package registers every backend; heavy libraries (torch,
transformers, Pengi's code) load only when a backend is created.
"""

from avsbridge.audio_text import ast_tagger, pengi, qwen2audio, yamnet  # noqa: F401  (registration)
from avsbridge.audio_text.base import AUDIO_TEXTERS, AudioTexter, Tag, select_tags, tags_to_text
from avsbridge.audio_text.prompts import ALM_PROMPTS, DEFAULT_PROMPT_KEY, prompt_text

__all__ = [
    "ALM_PROMPTS",
    "AUDIO_TEXTERS",
    "DEFAULT_PROMPT_KEY",
    "AudioTexter",
    "Tag",
    "prompt_text",
    "select_tags",
    "tags_to_text",
]
