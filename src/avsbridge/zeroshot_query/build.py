"""One sample's query under one strategy, from the cached audio / image records."""

from __future__ import annotations

from typing import Any

from avsbridge.zeroshot_query.inversion import InversionSettings
from avsbridge.zeroshot_query.nouns import DEFAULT_MODEL, noun_phrases
from avsbridge.zeroshot_query.strategies import NO_NOUN_QUERY, NOUN_TEMPLATE, strategy


class StrategyUnavailable(RuntimeError):
    """The strategy cannot run with the profile's parts (message says which part)."""


def build_query(
    name: str,
    audio: dict[str, Any] | None,
    image: dict[str, Any] | None,
    matcher: Any,
    sample: Any = None,
    spacy_model: str = DEFAULT_MODEL,
    inversion: InversionSettings | None = None,
) -> dict[str, Any]:
    """Every intermediate output (source text, noun phrases, scores) and the chosen query;
    ``inversion``: the optimisation's settings (defaults when None)."""
    st = strategy(name)
    out: dict[str, Any] = {"strategy": name}
    if st.source == "audio_embedding":
        if not getattr(matcher, "can_invert", False):
            raise StrategyUnavailable(
                f"strategy {name!r} needs a matcher that inverts audio into the RIS text "
                f"encoder's token space; {getattr(matcher, 'name', matcher)!r} cannot"
            )
        return {**out, **matcher.invert(sample, audio, inversion or InversionSettings())}
    if st.source == "audio_class":
        assert audio is not None
        text = audio.get("top_class", "")
        out.update(source_text=text, query=text or NO_NOUN_QUERY)
        return out
    if st.source == "audio_caption":
        assert audio is not None
        text = audio.get("caption", "")
    else:
        assert image is not None
        text = image.get("caption", "")
    out["source_text"] = text
    if st.verify is None:
        out["query"] = text or NO_NOUN_QUERY
        return out
    phrases = noun_phrases(text, spacy_model)
    out["noun_phrases"] = phrases
    if not phrases:
        out.update(scores=[], chosen="", query=NO_NOUN_QUERY)
        return out
    if st.verify == "audio":
        scores = matcher.score_audio(phrases, audio or {}, sample)
    else:
        scores = matcher.score_image(phrases, image or {}, sample)
    best = max(range(len(phrases)), key=lambda i: (scores[i], -i))
    out.update(
        scores=[round(float(s), 6) for s in scores],
        chosen=phrases[best],
        query=NOUN_TEMPLATE.format(phrases[best]),
    )
    return out
