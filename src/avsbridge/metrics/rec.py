"""REC#1 of TeSO Table 3: how precisely the text cues name the clip's sounding classes.

TeSO reports "REC(#1) AP(%)": the audio recognition of the text cues at the cue
collection stage (Section 4.3 / 5). No official code exists (the authors'
repository, GeWu-Lab/Sounding-Object-Segmentation-Preference, has no REC script) and
the text gives no formula, so this module fixes one and says why:

**Definition.** For every frame f of the split, C_f = the frame's distinct cue nouns,
G = the clip's ground-truth categories mapped to object nouns
(:func:`avsbridge.translate.categories.label_to_nouns`: "playing_violin" -> "violin").
A cue is correct when it names one of G (:func:`matches`). Then

    precision(f) = |{c in C_f : c correct}| / |C_f|,   0 when C_f is empty or missing
    AP = mean over all frames f of precision(f)

i.e. scikit-learn's ``precision_score(average="samples", zero_division=0)`` with the
frames as samples. **Why:** text cues carry no confidence score, so there is no
ranking to integrate a precision-recall curve over; with one operating point per
frame, the "average precision" that remains is the sample-averaged precision the
brief asks for ("precision of the text cues against each clip's ground-truth
categories"). Frames are the samples because TeSO collects cues per frame
(Section 3.1). A frame whose cues failed (call failed, malformed answer, no
description) counts as 0, never dropped, and is counted (``n_failed``); so does
a frame with an empty cue list (``n_empty``).

Also reported, not in any cell: ``ap_clip`` (the same over clips, with the union of
each clip's frame cues), sample-averaged ``recall`` and ``micro_precision``.

**Matching.** Lower-case, articles dropped; a cue matches class noun g when the cue,
its last word (the head of "acoustic guitar"), or either with a plural "s"/"es"
dropped equals g or one of g's aliases (:data:`ALIASES`: a small, explicit table of
words COCO labels and captioners use for the AVSBench classes, e.g. "person" for
man / woman / baby). Anything else is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from avsbridge.translate.categories import label_to_nouns

PROTOCOL = "teso-rec-cues"
# class noun -> other words that name it (captioner / COCO vocabulary)
ALIASES: dict[str, tuple[str, ...]] = {
    "man": ("person", "people", "boy", "guy", "male", "gentleman", "speaker", "human"),
    "woman": ("person", "people", "girl", "lady", "female", "singer", "human"),
    "baby": ("person", "infant", "toddler", "child", "kid"),
    "car": ("automobile", "vehicle", "racecar"),
    "bus": ("vehicle", "coach"),
    "ambulance": ("truck", "vehicle", "siren"),
    "bird": ("mynah", "parrot", "songbird"),
    "dog": ("puppy", "hound"),
    "cat": ("kitten", "kitty"),
    "horse": ("pony",),
    "guitar": ("ukulele",),
    "keyboard": ("computer", "laptop"),
    "lawn mower": ("mower", "lawnmower"),
    "piano": ("keyboard",),
}
_ARTICLES = ("a ", "an ", "the ")


def _forms(word: str) -> set[str]:
    word = word.strip().lower()
    for article in _ARTICLES:
        if word.startswith(article):
            word = word[len(article) :]
    forms = {word}
    if word.endswith("es"):
        forms.add(word[:-2])
    if word.endswith("s"):
        forms.add(word[:-1])
    return {f for f in forms if f}


def class_words(noun: str) -> set[str]:
    return {noun.lower(), *ALIASES.get(noun.lower(), ())}


def matches(cue: str, gt_nouns: Iterable[str]) -> bool:
    """Whether ``cue`` names one of the clip's class nouns (module docstring)."""
    words = cue.strip().lower().split()
    if not words:
        return False
    candidates = _forms(" ".join(words)) | _forms(words[-1])
    return any(candidates & class_words(g) for g in gt_nouns)


def gt_nouns_of(labels: Sequence[str]) -> list[str]:
    nouns: list[str] = []
    for label in labels:
        for noun in label_to_nouns(label):
            if noun not in nouns:
                nouns.append(noun)
    return nouns


def precision(cues: Sequence[str] | None, gt: Sequence[str]) -> float:
    distinct = list(dict.fromkeys(c.strip().lower() for c in (cues or []) if c.strip()))
    if not distinct:
        return 0.0
    return sum(matches(c, gt) for c in distinct) / len(distinct)


def recall(cues: Sequence[str] | None, gt: Sequence[str]) -> float:
    if not gt:
        return 0.0
    return sum(any(matches(c, [g]) for c in (cues or [])) for g in gt) / len(gt)


@dataclass(frozen=True)
class FrameCues:
    clip: str
    frame: int
    cues: list[str] | None  # None: no usable cues (failed / malformed / no description)
    gt: list[str]  # the clip's class nouns


def rec_scores(frames: Sequence[FrameCues]) -> dict[str, Any]:
    """AP (definition: module docstring) and the side figures over ``frames``."""
    if not frames:
        raise ValueError("REC#1 over no frames")
    n = len(frames)
    by_clip: dict[str, tuple[list[str], list[str]]] = {}
    tp = n_cues = 0
    for f in frames:
        cues = list(dict.fromkeys(c.strip().lower() for c in (f.cues or []) if c.strip()))
        tp += sum(matches(c, f.gt) for c in cues)
        n_cues += len(cues)
        union, _ = by_clip.setdefault(f.clip, ([], f.gt))
        union += [c for c in cues if c not in union]
    return {
        "ap": sum(precision(f.cues, f.gt) for f in frames) / n,
        "ap_clip": sum(precision(u, g) for u, g in by_clip.values()) / len(by_clip),
        "recall": sum(recall(f.cues, f.gt) for f in frames) / n,
        "micro_precision": tp / n_cues if n_cues else 0.0,
        "n_frames": n,
        "n_clips": len(by_clip),
        "n_failed": sum(1 for f in frames if f.cues is None),
        "n_empty": sum(1 for f in frames if f.cues is not None and not f.cues),
    }


DEFINITION = (
    "AP = mean over frames of |correct distinct cues| / |distinct cues| (0 for no cues; "
    "sklearn precision_score average='samples', zero_division=0); a cue is correct when it "
    "names one of the clip's GT category nouns (avsbridge.metrics.rec.matches)"
)
