"""Clip-level weak labels -> object nouns for OpenAVS* (Table 5).

AVSBench-object categories are event names ("dog_barking"); a VFM wants the
sounding object ("dog"). AVSS / V3 labels are already nouns, several joined by
``_`` ("accordion_drum_man"), with ``-`` inside a noun ("hair-dryer").
"""

from __future__ import annotations

from collections.abc import Iterable

AVSBENCH_OBJECT_NOUNS: dict[str, str] = {
    "ambulance_siren": "ambulance",
    "baby_laughter": "baby",
    "cap_gun_shooting": "gun",
    "cat_meowing": "cat",
    "chainsawing_trees": "chainsaw",  # the S4 folder name
    "chainsaw": "chainsaw",
    "coyote_howling": "coyote",
    "dog_barking": "dog",
    "driving_buses": "bus",
    "female_singing": "woman",
    "helicopter": "helicopter",
    "horse_clip-clop": "horse",
    "lawn_mowing": "lawn mower",
    "lions_roaring": "lion",
    "male_speech": "man",
    "mynah_bird_singing": "bird",
    "playing_acoustic_guitar": "guitar",
    "playing_glockenspiel": "glockenspiel",
    "playing_piano": "piano",
    "playing_tabla": "tabla",
    "playing_ukulele": "ukulele",
    "playing_violin": "violin",
    "race_car": "car",
    "typing_on_computer_keyboard": "keyboard",
}


def label_to_nouns(label: str) -> list[str]:
    """Object nouns for one weak label (an AVSBench category or an AVSS/V3 noun list)."""
    key = label.strip().lower()
    if not key:
        return []
    if key in AVSBENCH_OBJECT_NOUNS:
        return [AVSBENCH_OBJECT_NOUNS[key]]
    return [part.replace("-", " ") for part in key.split("_") if part]


def labels_to_prompt(labels: Iterable[str]) -> str:
    """The VFM prompt of a clip: its labels' nouns, comma-separated, deduplicated."""
    nouns: list[str] = []
    for label in labels:
        for noun in label_to_nouns(label):
            if noun not in nouns:
                nouns.append(noun)
    return ", ".join(nouns)
