"""What the demo benchmark shows and plays: visual objects and AVSBench categories.

Kept as plain data so the generator, the vocabulary file and the tests agree on
one list; the category names are the official AVSBench-S4 names so the real
adapters and the paper's label sets apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VisualObject:
    """A renderable object: a Noto Color Emoji glyph and the nouns that name it."""

    name: str
    codepoints: tuple[int, ...]
    synonyms: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(chr(cp) for cp in self.codepoints)

    @property
    def emoji_label(self) -> str:
        return " ".join(f"U+{cp:04X}" for cp in self.codepoints)


@dataclass(frozen=True)
class SoundCategory:
    """An AVSBench category, the object that makes it and how its audio is made."""

    name: str
    objects: tuple[str, ...]
    source: str  # key into sounds.SOURCES


OBJECTS: dict[str, VisualObject] = {
    o.name: o
    for o in (
        VisualObject("dog", (0x1F415,), ("dog", "puppy", "hound")),
        VisualObject("cat", (0x1F408,), ("cat", "kitten", "kitty")),
        VisualObject("horse", (0x1F40E,), ("horse", "pony", "stallion")),
        VisualObject("man", (0x1F468,), ("man", "male", "person", "speaker")),
        VisualObject("woman", (0x1F469,), ("woman", "female", "person", "singer")),
        VisualObject("baby", (0x1F476,), ("baby", "infant", "child")),
        VisualObject("piano", (0x1F3B9,), ("piano", "keyboard", "musical keyboard")),
        VisualObject("guitar", (0x1F3B8,), ("guitar", "acoustic guitar")),
        VisualObject("violin", (0x1F3BB,), ("violin", "fiddle")),
        VisualObject("helicopter", (0x1F681,), ("helicopter", "chopper")),
        VisualObject("ambulance", (0x1F691,), ("ambulance", "emergency vehicle")),
        VisualObject("car", (0x1F3CE,), ("car", "race car", "racing car")),
        VisualObject("bus", (0x1F68C,), ("bus", "coach")),
        VisualObject("bird", (0x1F426,), ("bird", "mynah", "songbird")),
        # Distractors: visible, never sounding.
        VisualObject("cow", (0x1F404,), ("cow", "cattle")),
        VisualObject("sheep", (0x1F411,), ("sheep", "lamb")),
        VisualObject("pig", (0x1F416,), ("pig", "hog")),
        VisualObject("duck", (0x1F986,), ("duck",)),
        VisualObject("tree", (0x1F333,), ("tree",)),
        VisualObject("bicycle", (0x1F6B2,), ("bicycle", "bike")),
        VisualObject("chair", (0x1FA91,), ("chair", "seat")),
    )
}

CATEGORIES: dict[str, SoundCategory] = {
    c.name: c
    for c in (
        SoundCategory("dog_barking", ("dog",), "dog"),
        SoundCategory("cat_meowing", ("cat",), "cat"),
        SoundCategory("horse_clip-clop", ("horse",), "hooves"),
        SoundCategory("male_speech", ("man",), "male_speech"),
        SoundCategory("female_singing", ("woman",), "female_singing"),
        SoundCategory("baby_laughter", ("baby",), "baby_laughter"),
        SoundCategory("playing_piano", ("piano",), "piano"),
        SoundCategory("playing_acoustic_guitar", ("guitar",), "guitar"),
        SoundCategory("playing_violin", ("violin",), "violin"),
        SoundCategory("helicopter", ("helicopter",), "helicopter"),
        SoundCategory("ambulance_siren", ("ambulance",), "siren"),
        SoundCategory("race_car", ("car",), "race_car"),
        SoundCategory("driving_buses", ("bus",), "bus_engine"),
        SoundCategory("mynah_bird_singing", ("bird",), "bird_song"),
    )
}

DISTRACTORS: tuple[str, ...] = ("cow", "sheep", "pig", "duck", "tree", "bicycle", "chair")


def category_of_object(obj: str) -> str:
    """The category an object sounds as (each sounding object has exactly one)."""
    for cat in CATEGORIES.values():
        if obj in cat.objects:
            return cat.name
    raise KeyError(f"{obj} never sounds in the demo benchmark")
