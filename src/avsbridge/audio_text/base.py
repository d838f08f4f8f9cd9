"""The audio -> text backend interface, its registry, and the tag -> text templates.

Every backend turns 1-s audio windows (one per video frame) into one text each.
ALMs (Pengi, Qwen2-Audio) answer the prompt themselves; taggers (YAMNet, AST)
produce AudioSet tags, which :func:`tags_to_text` turns into the form each of the
paper's three prompts asks for, so a tagger can stand in for an ALM anywhere
downstream. The templating lives here once so every tagger words things alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from avsbridge.registry import Registry


@runtime_checkable
class AudioTexter(Protocol):
    """One audio -> text backend, loaded once per job and used for a whole shard."""

    name: str
    sample_rate: int  # native input rate: windows handed to describe() are at this rate

    def identity(self) -> dict[str, Any]:
        """Backend, model id, weights sha256 and decoding params: what the output depends on."""
        ...

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        """One text per window (windows already at ``sample_rate``)."""
        ...


AUDIO_TEXTERS: Registry[AudioTexter] = Registry("audio-text", "avsbridge.audio_text")


# --- tags --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """One AudioSet class with its score (sigmoid / model output in [0, 1])."""

    label: str
    score: float


SILENCE_LABEL = "Silence"

# AudioSet classes that say where or what kind of sound, not which object makes it.
# They are ranked after specific classes: a VFM can segment "a bird", not "wild animals".
GENERIC_TAGS: frozenset[str] = frozenset(
    {
        "Animal",
        "Domestic animals, pets",
        "Wild animals",
        "Livestock, farm animals, working animals",
        "Environmental noise",
        "Noise",
        "Inside, small room",
        "Inside, large room or hall",
        "Inside, public space",
        "Outside, urban or manmade",
        "Outside, rural or natural",
        "Reverberation",
        "Echo",
        "Field recording",
        "Sound effect",
        "Static",
        "Vehicle",
        "Motor vehicle (road)",
        "Musical instrument",
        "Plucked string instrument",
        "Bowed string instrument",
        "Percussion",
        "Mechanisms",
        "Tools",
        "Liquid",
    }
)


def rms(window: np.ndarray) -> float:
    """Root-mean-square level of a window (0.0 for an empty one)."""
    if window.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(window.astype(np.float64)))))


def select_tags(
    scores: np.ndarray,
    labels: Sequence[str],
    top_k: int = 3,
    threshold: float = 0.1,
) -> list[Tag]:
    """Top AudioSet tags of one window: score >= threshold, specific classes first, at most top_k.

    A window whose best class is Silence has no tags (the caller turns that into "").
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if len(scores) == 0 or labels[int(np.argmax(scores))] == SILENCE_LABEL:
        return []
    keep = [i for i in range(len(scores)) if scores[i] >= threshold and labels[i] != SILENCE_LABEL]
    keep.sort(key=lambda i: (labels[i] in GENERIC_TAGS, -scores[i], i))
    return [Tag(labels[i], float(scores[i])) for i in keep[:top_k]]


# --- tag -> text --------------------------------------------------------------------------

# Caption clauses (subject, verb) for AudioSet classes, covering AVSBench's categories and
# the common classes around them. Tags with the same subject give one clause (the first).
CAPTION_CLAUSES: dict[str, tuple[str, str]] = {
    "Speech": ("a person", "speaks"),
    "Male speech, man speaking": ("a man", "speaks"),
    "Female speech, woman speaking": ("a woman", "speaks"),
    "Child speech, kid speaking": ("a child", "speaks"),
    "Conversation": ("people", "talk"),
    "Narration, monologue": ("a person", "narrates"),
    "Babbling": ("a baby", "babbles"),
    "Shout": ("a person", "shouts"),
    "Yell": ("a person", "yells"),
    "Screaming": ("a person", "screams"),
    "Whispering": ("a person", "whispers"),
    "Laughter": ("a person", "laughs"),
    "Baby laughter": ("a baby", "laughs"),
    "Baby cry, infant cry": ("a baby", "cries"),
    "Crying, sobbing": ("a person", "cries"),
    "Singing": ("a person", "sings"),
    "Male singing": ("a man", "sings"),
    "Female singing": ("a woman", "sings"),
    "Child singing": ("a child", "sings"),
    "Choir": ("a choir", "sings"),
    "Whistling": ("a person", "whistles"),
    "Cough": ("a person", "coughs"),
    "Clapping": ("people", "clap"),
    "Applause": ("a crowd", "applauds"),
    "Cheering": ("a crowd", "cheers"),
    "Crowd": ("a crowd", "makes noise"),
    "Animal": ("an animal", "makes noise"),
    "Domestic animals, pets": ("a pet", "makes noise"),
    "Wild animals": ("a wild animal", "calls"),
    "Dog": ("a dog", "barks"),
    "Bark": ("a dog", "barks"),
    "Yip": ("a dog", "yips"),
    "Howl": ("an animal", "howls"),
    "Bow-wow": ("a dog", "barks"),
    "Growling": ("an animal", "growls"),
    "Whimper (dog)": ("a dog", "whimpers"),
    "Canidae, dogs, wolves": ("a canine", "howls"),
    "Cat": ("a cat", "meows"),
    "Meow": ("a cat", "meows"),
    "Purr": ("a cat", "purrs"),
    "Caterwaul": ("a cat", "yowls"),
    "Horse": ("a horse", "trots"),
    "Clip-clop": ("a horse", "clip-clops"),
    "Neigh, whinny": ("a horse", "neighs"),
    "Cattle, bovinae": ("a cow", "moos"),
    "Moo": ("a cow", "moos"),
    "Pig": ("a pig", "oinks"),
    "Goat": ("a goat", "bleats"),
    "Sheep": ("a sheep", "bleats"),
    "Chicken, rooster": ("a chicken", "clucks"),
    "Duck": ("a duck", "quacks"),
    "Goose": ("a goose", "honks"),
    "Roaring cats (lions, tigers)": ("a lion", "roars"),
    "Roar": ("a lion", "roars"),
    "Bird": ("a bird", "chirps"),
    "Bird vocalization, bird call, bird song": ("a bird", "sings"),
    "Chirp, tweet": ("a bird", "tweets"),
    "Squawk": ("a bird", "squawks"),
    "Pigeon, dove": ("a pigeon", "coos"),
    "Crow": ("a crow", "caws"),
    "Owl": ("an owl", "hoots"),
    "Insect": ("an insect", "buzzes"),
    "Frog": ("a frog", "croaks"),
    "Music": ("music", "plays"),
    "Guitar": ("a guitar", "is played"),
    "Acoustic guitar": ("an acoustic guitar", "is played"),
    "Electric guitar": ("an electric guitar", "is played"),
    "Bass guitar": ("a bass guitar", "is played"),
    "Ukulele": ("a ukulele", "is played"),
    "Banjo": ("a banjo", "is played"),
    "Piano": ("a piano", "is played"),
    "Electric piano": ("an electric piano", "is played"),
    "Keyboard (musical)": ("a keyboard", "is played"),
    "Organ": ("an organ", "is played"),
    "Drum": ("a drum", "is beaten"),
    "Drum kit": ("a drum kit", "is played"),
    "Tabla": ("a tabla", "is played"),
    "Glockenspiel": ("a glockenspiel", "is played"),
    "Marimba, xylophone": ("a xylophone", "is played"),
    "Violin, fiddle": ("a violin", "is played"),
    "Cello": ("a cello", "is played"),
    "Flute": ("a flute", "is played"),
    "Saxophone": ("a saxophone", "is played"),
    "Trumpet": ("a trumpet", "is played"),
    "Harp": ("a harp", "is played"),
    "Accordion": ("an accordion", "is played"),
    "Bell": ("a bell", "rings"),
    "Church bell": ("a church bell", "rings"),
    "Vehicle": ("a vehicle", "passes"),
    "Motor vehicle (road)": ("a vehicle", "drives"),
    "Car": ("a car", "drives"),
    "Car passing by": ("a car", "passes by"),
    "Race car, auto racing": ("a race car", "roars"),
    "Truck": ("a truck", "drives"),
    "Bus": ("a bus", "drives"),
    "Motorcycle": ("a motorcycle", "revs"),
    "Train": ("a train", "passes"),
    "Boat, Water vehicle": ("a boat", "moves"),
    "Aircraft": ("an aircraft", "flies"),
    "Helicopter": ("a helicopter", "flies"),
    "Fixed-wing aircraft, airplane": ("an airplane", "flies"),
    "Bicycle": ("a bicycle", "rolls"),
    "Emergency vehicle": ("an emergency vehicle", "sounds its siren"),
    "Police car (siren)": ("a police car", "sounds its siren"),
    "Ambulance (siren)": ("an ambulance", "sounds its siren"),
    "Fire engine, fire truck (siren)": ("a fire truck", "sounds its siren"),
    "Siren": ("a siren", "wails"),
    "Vehicle horn, car horn, honking": ("a car horn", "honks"),
    "Engine": ("an engine", "runs"),
    "Lawn mower": ("a lawn mower", "runs"),
    "Chainsaw": ("a chainsaw", "cuts"),
    "Typing": ("a person", "types"),
    "Computer keyboard": ("a keyboard", "clicks"),
    "Typewriter": ("a typewriter", "clacks"),
    "Cap gun": ("a cap gun", "fires"),
    "Gunshot, gunfire": ("a gun", "fires"),
    "Telephone": ("a telephone", "rings"),
    "Clock": ("a clock", "ticks"),
    "Water": ("water", "flows"),
    "Rain": ("rain", "falls"),
    "Wind": ("wind", "blows"),
    "Thunder": ("thunder", "rumbles"),
    "Ocean": ("the ocean", "roars"),
    "Fire": ("a fire", "crackles"),
    "Door": ("a door", "moves"),
    "Knock": ("someone", "knocks"),
    "Vacuum cleaner": ("a vacuum cleaner", "runs"),
    "Blender": ("a blender", "whirs"),
    "Mechanical fan": ("a fan", "whirs"),
}


def tag_name(label: str) -> str:
    """The short name of an AudioSet label: the part before the first comma ("Bird vocalization")."""
    return label.split(",")[0].strip()


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _caption(labels: list[str]) -> str:
    """Clauses from CAPTION_CLAUSES (one per subject); other tags share one "sound of" clause."""
    clauses: dict[str, str] = {}
    others: list[str] = []
    for label in labels:
        if label in CAPTION_CLAUSES:
            subject, verb = CAPTION_CLAUSES[label]
            clauses.setdefault(subject, f"{subject} {verb}")
        else:
            name = tag_name(label).lower()
            if name not in others:
                others.append(name)
            clauses.setdefault("\0others", "")
    parts = []
    for subject, clause in clauses.items():
        if subject == "\0others":
            noun = "a sound of" if len(others) == 1 else "sounds of"
            verb = "is" if len(others) == 1 else "are"
            clause = f"{noun} {_join_names(others)} {verb} heard"
        parts.append(clause)
    if len(parts) == 1:
        return parts[0]
    return f"{parts[0]} while " + " and ".join(parts[1:])


def tags_to_text(tags: Sequence[Tag | str], prompt_key: str) -> str:
    """Word AudioSet tags in the form each ALM prompt asks for (deterministic, template-based).

    - ``soundof``  -> a tag phrase:       "dog, bark"
    - ``metadata`` -> a metadata list:    "labels: Dog; Bark; Animal"
    - ``caption``  -> a caption sentence: "a dog barks while an animal makes noise"

    No tags (silence) gives "" for every prompt.
    """
    labels = [t.label if isinstance(t, Tag) else str(t) for t in tags]
    labels = [label for label in dict.fromkeys(labels) if label and label != SILENCE_LABEL]
    if not labels:
        return ""
    if prompt_key == "soundof":
        return ", ".join(dict.fromkeys(tag_name(label).lower() for label in labels))
    if prompt_key == "metadata":
        return "labels: " + "; ".join(dict.fromkeys(tag_name(label) for label in labels))
    if prompt_key == "caption":
        return _caption(labels)
    raise KeyError(f"unknown ALM prompt key {prompt_key!r} (known: caption, metadata, soundof)")


# --- shared helpers for backends ----------------------------------------------------------


def fit_length(window: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or symmetrically zero-pad a 1-D window to exactly ``length`` samples."""
    window = np.asarray(window, dtype=np.float32).reshape(-1)
    n = len(window)
    if n == length:
        return window
    if n > length:
        start = (n - length) // 2
        return window[start : start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - n) // 2
    out[start : start + n] = window
    return out
