"""BAaV's five strategies: each one's query from cached audio / image records (unit level),
the real demo stand-ins on a 2-sample demo slice, and which cells the demo fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsbridge.zeroshot_query.build import StrategyUnavailable, build_query
from avsbridge.zeroshot_query.strategies import NO_NOUN_QUERY, STRATEGIES

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
AUDIO = {
    "tags": [{"label": "Piano", "score": 0.8}, {"label": "Music", "score": 0.6}],
    "top_class": "Piano",
    "caption": "a man plays the piano next to a dog",
}
IMAGE = {
    "caption": "a dog and a piano",
    "detections": [{"label": "dog", "score": 0.7}, {"label": "piano", "score": 0.5}],
}


class KeywordMatcher:
    """Scores a phrase by whether it contains a keyword of the side it is matched against."""

    name = "keyword"
    can_invert = False

    def __init__(self, audio_word: str, image_word: str) -> None:
        self.audio_word, self.image_word = audio_word, image_word
        self.calls: list[tuple[str, list[str]]] = []

    def score_audio(self, phrases, audio, sample):
        self.calls.append(("audio", phrases))
        return [1.0 if self.audio_word in p else 0.1 for p in phrases]

    def score_image(self, phrases, image, sample):
        self.calls.append(("image", phrases))
        return [1.0 if self.image_word in p else 0.1 for p in phrases]


def test_the_five_strategies_are_data():
    assert list(STRATEGIES) == [
        "classification",
        "captioning",
        "inversion",
        "vcap_acls",
        "acap_vcls",
    ]
    assert [s.verify for s in STRATEGIES.values()] == [None, None, None, "audio", "image"]


def test_classification_and_captioning_pass_text_through():
    rec = build_query("classification", AUDIO, None, None)
    assert rec["query"] == "Piano" and rec["source_text"] == "Piano"
    rec = build_query("captioning", AUDIO, None, None)
    assert rec["query"] == AUDIO["caption"]
    assert build_query("classification", {"top_class": ""}, None, None)["query"] == NO_NOUN_QUERY


def test_vcap_acls_picks_the_image_phrase_the_audio_matches():
    matcher = KeywordMatcher(audio_word="piano", image_word="dog")
    rec = build_query("vcap_acls", AUDIO, IMAGE, matcher)
    assert rec["source_text"] == IMAGE["caption"]
    assert rec["noun_phrases"] == ["a dog", "a piano"]
    assert rec["scores"] == [0.1, 1.0]
    assert rec["chosen"] == "a piano" and rec["query"] == "A photo of a piano"
    assert matcher.calls == [("audio", ["a dog", "a piano"])]


def test_acap_vcls_picks_the_audio_phrase_the_image_matches():
    matcher = KeywordMatcher(audio_word="piano", image_word="dog")
    rec = build_query("acap_vcls", AUDIO, IMAGE, matcher)
    assert rec["noun_phrases"] == ["a man", "the piano", "a dog"]
    assert rec["chosen"] == "a dog" and rec["query"] == "A photo of a dog"
    assert matcher.calls[0][0] == "image"


def test_no_noun_phrase_gives_baav_default_query():
    matcher = KeywordMatcher("x", "y")
    rec = build_query("vcap_acls", AUDIO, {"caption": ""}, matcher)
    assert rec["noun_phrases"] == [] and rec["query"] == NO_NOUN_QUERY
    assert matcher.calls == []


def test_ties_pick_the_first_phrase():
    matcher = KeywordMatcher("zzz", "zzz")
    assert build_query("vcap_acls", AUDIO, IMAGE, matcher)["chosen"] == "a dog"


def test_inversion_needs_an_inverting_matcher():
    """A matcher without ``invert`` (a test stand-in) cannot run it; both real ones can."""
    from avsbridge.zeroshot_query import MATCHERS

    assert all(MATCHERS.load_all().get(n).can_invert for n in ("minilm", "clap-clip"))
    with pytest.raises(StrategyUnavailable, match="inverts audio"):
        build_query("inversion", AUDIO, None, KeywordMatcher("a", "b"))


# --- the real demo stand-ins on a 2-sample slice ---------------------------------------------


@pytest.fixture(scope="module")
def demo_records(weights_mirror):
    from avsbridge.data.demo_zeroshot import load_demo_zeroshot
    from avsbridge.zeroshot_audio.yamnet_clip import YamnetClipAnalyser
    from avsbridge.zeroshot_image.coco_ssd import CocoSsdCaptioner

    samples = load_demo_zeroshot(DEMO / "zeroshot/demo_zeroshot.json", DEMO)[:2]
    audio = YamnetClipAnalyser()
    image = CocoSsdCaptioner()
    return [(s, audio.analyse(s.audio), image.caption(s.image)) for s in samples]


def test_demo_audio_and_image_records(demo_records):
    for sample, audio, image in demo_records:
        assert audio["n_windows"] > 0 and audio["top_class"], sample.id
        assert all(0 <= t["score"] <= 1 for t in audio["tags"])
        assert audio["caption"]
        assert isinstance(image["caption"], str)
        labels = [d["label"] for d in image["detections"]]
        for label in labels:
            assert label in image["caption"]
    # the two sources of one composite share the image, so its caption is identical
    assert demo_records[0][2] == demo_records[1][2]


@pytest.fixture(scope="module")
def minilm():
    from avsbridge.zeroshot_query.minilm import MiniLMMatcher

    return MiniLMMatcher(torch_threads=1)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_on_the_demo_slice(demo_records, minilm, name):
    from avsbridge.audio_text.base import tag_name
    from avsbridge.zeroshot_query.inversion import InversionSettings

    matcher = minilm
    settings = InversionSettings(tokens=2, steps=30, seed=0)
    for sample, audio, image in demo_records:
        rec = build_query(name, audio, image, matcher, sample, inversion=settings)
        assert rec["query"], (name, sample.id)
        if name == "inversion":
            assert rec["target"]["dim"] == 384 and len(rec["pseudo_words"]) == 2
            assert rec["query"] == "A photo of " + " ".join(rec["pseudo_words"])
            assert rec["loss_best_discrete"] < rec["loss_start"], rec["loss_curve"]
            names = [tag_name(t["label"]).lower() for t in audio["tags"]]
            assert rec["target_source"]["text"] == (names or [tag_name(audio["top_class"]).lower()])
        if STRATEGIES[name].verify:
            if rec["noun_phrases"]:
                assert rec["chosen"] in rec["noun_phrases"]
                assert len(rec["scores"]) == len(rec["noun_phrases"])
                assert np.argmax(rec["scores"]) == rec["noun_phrases"].index(rec["chosen"])
                assert rec["query"] == f"A photo of {rec['chosen']}"
            else:
                assert rec["query"] == NO_NOUN_QUERY


def test_minilm_scores_a_matching_name_highest():
    from avsbridge.zeroshot_query.minilm import MiniLMMatcher

    scores = MiniLMMatcher().score_audio(
        ["a guitar", "a bus"], {"tags": [{"label": "Guitar"}]}, None
    )
    assert scores[0] > scores[1]
