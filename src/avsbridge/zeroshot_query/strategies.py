"""BAaV's five zero-shot strategies (Section 3.2) as data.

Each says which cached text it starts from, whether noun phrases are extracted and
verified against the other modality, and how the query is worded -- the wording of
BAaV's ``utils/evaluator.py`` (cid2rrrr/BAaV @ 149358d): the class name or caption
as-is, ``"A photo of {noun}"`` for a verified noun phrase, ``"A photo of something"``
when the caption has no noun chunk. BAaV's single-sample ``evalutate`` scores the
whole caption once (so it always picks the first noun); its ``evaluate_batch`` scores
every noun -- the latter, the method the paper describes, is followed here.
"""

from __future__ import annotations

from dataclasses import dataclass

NOUN_TEMPLATE = "A photo of {}"
NO_NOUN_QUERY = "A photo of something"


@dataclass(frozen=True)
class Strategy:
    name: str
    source: str  # audio_class | audio_caption | image_caption | audio_embedding
    verify: str | None = None  # None | "audio" | "image": modality that picks the noun phrase
    needs_audio: bool = True
    needs_image: bool = False
    about: str = ""

    @property
    def uses_matcher(self) -> bool:
        """Whether the matcher (CLAP / CLIP's role) runs: to verify, or to invert the audio."""
        return self.verify is not None or self.source == "audio_embedding"


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("classification", "audio_class", about="audio tagger class name -> query"),
        Strategy("captioning", "audio_caption", about="audio caption -> query"),
        Strategy(
            "inversion",
            "audio_embedding",
            about="audio embedding -> pseudo-word tokens read by the RIS text encoder",
        ),
        Strategy(
            "vcap_acls",
            "image_caption",
            verify="audio",
            needs_image=True,
            about="image caption -> noun phrases -> the one matching the audio",
        ),
        Strategy(
            "acap_vcls",
            "audio_caption",
            verify="image",
            needs_image=True,
            about="audio caption -> noun phrases -> the one matching the image",
        ),
    )
}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(
            f"unknown zero-shot strategy {name!r} (known: {', '.join(STRATEGIES)})"
        ) from None
