"""Stage 3: LLM prompt translation (OpenAVS §3.4, Appendix A, Table 4).

Importing the package registers the translator backends (``openai``, ``local``,
``none``) in :data:`TRANSLATORS`; heavy libraries load only when a backend is built.
"""

from avsbridge.translate import local_backend, none_backend, openai_backend  # noqa: F401
from avsbridge.translate.backends import TRANSLATORS, Completion, Translator, TranslatorError
from avsbridge.translate.cache import CacheMiss, CallCache, cache_stats
from avsbridge.translate.strategies import STRATEGIES, build_requests, parse_answers

__all__ = [
    "STRATEGIES",
    "TRANSLATORS",
    "CacheMiss",
    "CallCache",
    "Completion",
    "Translator",
    "TranslatorError",
    "build_requests",
    "cache_stats",
    "parse_answers",
]
