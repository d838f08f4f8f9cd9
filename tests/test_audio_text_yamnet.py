"""YAMNet demo backend on real recordings, plus the shared tag -> text templates."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from avsbridge.audio_text import ALM_PROMPTS, AUDIO_TEXTERS, AudioTexter, prompt_text
from avsbridge.audio_text.base import (
    Tag,
    fit_length,
    select_tags,
    tags_to_text,
)
from avsbridge.audio_text.prompts import DEFAULT_PROMPT_KEY, prompt_key_of
from avsbridge.audio_text.yamnet import YAMNET_INPUT, read_yamnet_labels
from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError, read_wav


def one_second_windows(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    """Full 1-s windows only (our own cut; frame_windows belongs to the data stage)."""
    return [samples[i : i + rate] for i in range(0, len(samples) - rate + 1, rate)]


@pytest.fixture(scope="module")
def yamnet(weights_mirror: Path) -> AudioTexter:
    return AUDIO_TEXTERS.create("yamnet")


# --- prompts & templates (no model) -------------------------------------------------------


def test_prompts_are_the_papers_three() -> None:
    assert ALM_PROMPTS == {
        "soundof": "This is a sound of",
        "metadata": "Generate metadata",
        "caption": "Generate audio caption",
    }
    assert DEFAULT_PROMPT_KEY == "caption"
    assert prompt_key_of("generate audio caption") == "caption"
    with pytest.raises(KeyError, match="known"):
        prompt_text("describe")
    with pytest.raises(KeyError):
        prompt_key_of("What is this?")


def test_tags_to_text_forms() -> None:
    tags = [Tag("Dog", 0.9), Tag("Bark", 0.8), Tag("Animal", 0.7)]
    assert tags_to_text(tags, "soundof") == "dog, bark, animal"
    assert tags_to_text(tags, "metadata") == "labels: Dog; Bark; Animal"
    assert tags_to_text(tags, "caption") == "a dog barks while an animal makes noise"
    # unknown classes share one clause; comma-aliased labels use their first name
    assert (
        tags_to_text(["Bird vocalization, bird call, bird song", "Tick", "Ping"], "caption")
        == "a bird sings while sounds of tick and ping are heard"
    )
    assert tags_to_text(["Bird vocalization, bird call, bird song"], "soundof") == (
        "bird vocalization"
    )
    for key in ALM_PROMPTS:
        assert tags_to_text([], key) == ""
        assert tags_to_text([Tag("Silence", 1.0)], key) == ""
    with pytest.raises(KeyError):
        tags_to_text(tags, "summary")


def test_select_tags_threshold_topk_generic_last_and_silence() -> None:
    labels = ["Speech", "Animal", "Bird", "Silence", "Dog"]
    scores = np.array([0.05, 0.9, 0.4, 0.3, 0.2])
    tags = select_tags(scores, labels, top_k=3, threshold=0.1)
    # generic "Animal" ranks after the specific classes even though it scores highest;
    # Speech is under the threshold; Silence is never a tag
    assert [t.label for t in tags] == ["Bird", "Dog", "Animal"]
    assert select_tags(scores, labels, top_k=1, threshold=0.1)[0].label == "Bird"
    assert select_tags(np.array([0.1, 0.1, 0.1, 0.9, 0.1]), labels) == []
    with pytest.raises(ValueError):
        select_tags(np.zeros(3), labels)


def test_fit_length_centre_crops_and_pads() -> None:
    long = np.arange(16_000, dtype=np.float32)
    cropped = fit_length(long, YAMNET_INPUT)
    assert len(cropped) == YAMNET_INPUT and cropped[0] == 200.0
    padded = fit_length(np.ones(100, dtype=np.float32), 110)
    assert padded.tolist() == [0.0] * 5 + [1.0] * 100 + [0.0] * 5


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"


# --- the model ------------------------------------------------------------------------------


def test_labels_embedded(weights_mirror: Path) -> None:
    labels = read_yamnet_labels(weights_mirror / "yamnet_audio_classifier_with_metadata.tflite")
    assert len(labels) == 521 and labels[0] == "Speech" and "Silence" in labels


def test_not_a_model_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ArtifactError) as err:
        AUDIO_TEXTERS.create("yamnet", model_path=bogus)
    assert err.value.path == bogus


def test_speech_caption(yamnet: AudioTexter, shared_media: Path) -> None:
    samples, rate = read_wav(shared_media / "speech.wav")
    assert rate == yamnet.sample_rate == 16_000
    texts = yamnet.describe(one_second_windows(samples, rate), prompt_text("caption"))
    assert len(texts) == 4
    for text in texts:
        assert re.search(r"\bspeak|speech", text), text
    soundof = yamnet.describe(one_second_windows(samples, rate), prompt_text("soundof"))
    assert all(t.split(", ")[0] == "speech" for t in soundof)


def test_bird_caption(yamnet: AudioTexter, shared_media: Path) -> None:
    samples, rate = read_wav(shared_media / "two_heads.wav")  # 0.975 s of birdsong
    (caption,) = yamnet.describe([samples], prompt_text("caption"))
    assert "bird" in caption
    (metadata,) = yamnet.describe([samples], prompt_text("metadata"))
    assert metadata.startswith("labels: ") and "Bird" in metadata


def test_silence_gives_empty_text(yamnet: AudioTexter) -> None:
    silent = np.zeros(16_000, dtype=np.float32)
    hiss = np.random.default_rng(0).normal(0, 1e-5, 16_000).astype(np.float32)
    for key in ALM_PROMPTS:
        assert yamnet.describe([silent, hiss], prompt_text(key)) == ["", ""]


def test_prompt_forms_differ_and_are_deterministic(yamnet: AudioTexter, shared_media: Path) -> None:
    samples, rate = read_wav(shared_media / "two_heads.wav")
    forms = {key: yamnet.describe([samples], prompt_text(key))[0] for key in ALM_PROMPTS}
    assert len(set(forms.values())) == 3, forms
    assert forms["metadata"].startswith("labels: ")
    assert forms["soundof"] == forms["soundof"].lower() and "labels" not in forms["soundof"]
    again = AUDIO_TEXTERS.create("yamnet")
    assert {key: again.describe([samples], prompt_text(key))[0] for key in ALM_PROMPTS} == forms
    identity = yamnet.identity()
    assert identity["backend"] == "yamnet"
    assert identity["weights_sha256"] == (
        "10c95ea3eb9a7bb4cb8bddf6feb023250381008177ac162ce169694d05c317de"
    )
    assert identity == again.identity()


def test_strict_device_refuses_a_hidden_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """One device helper for every stage: CUDA_VISIBLE_DEVICES="" hides every GPU."""
    from avsbridge.backends.device import DeviceError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="cuda:1"):
        resolve_device("cuda:1", strict=True)
