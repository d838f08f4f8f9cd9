"""Pengi's real code (microsoft/Pengi at 31d5e37, read from ../shared/upstream/Pengi) end to end.

Nothing of Pengi is faked: its ``wrapper.PengiWrapper``, ``models.pengi.PENGI``
(HTSAT audio encoder, mapping transformers, GPT-2 decoder, CLIP text encoder),
its config files, checkpoint loading, tokenisation and beam search all run.
What the test supplies are the inputs a real run downloads, made offline
(:mod:`pengi_assets`): random weights in Pengi's published checkpoint format,
tiny GPT-2 / CLIP text models with the real tokenizers under their real hub
names, and a demo clip. The adapter runs on the project's main stack (torch 2.14,
transformers 5) exactly as a paper-profile job does.

Before the adapter's compatibility layer this failed at ``import torchaudio``
(ModuleNotFoundError: torchaudio has no torch 2.14 release), and past that at
Pengi's hub lookups, ``torch.load``'s weights_only default, the stale GPT-2/CLIP
buffers and the removed ``encode_plus``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pengi_assets
import pytest

from avsbridge.audio_text import AUDIO_TEXTERS
from avsbridge.audio_text.pengi import CLIP, GPT2, PENGI_COMMIT
from avsbridge.audio_text.run import describe_shard
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_json, sha256_file, write_wav
from avsbridge.pipeline import _backend_extra

REPO = Path(__file__).resolve().parents[1]
PENGI_HOME = Path(
    os.environ.get("AVSBRIDGE_PENGI_HOME", str(REPO.parent / "shared" / "upstream" / "Pengi"))
)
DEMO = REPO / "data" / "demo" / "Single-source" / "s4_data"
DEMO_CLIP = ("race_car", "demo_s4_025")
FAST = {"max_len": 6, "beam_size": 2, "device": "cpu"}


@pytest.fixture(scope="session")
def pengi_home() -> Path:
    if not (PENGI_HOME / "wrapper.py").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Pengi checkout not found at {PENGI_HOME}; CI needs ../shared beside")
        pytest.skip(f"Pengi checkout not found at {PENGI_HOME}")
    return PENGI_HOME


@pytest.fixture(scope="session")
def pengi_mirror(tmp_path_factory: pytest.TempPathFactory, pengi_home: Path) -> Path:
    """A weights mirror holding what a paper run downloads, made offline at test time."""
    try:
        tiktoken_file, clip_bpe = pengi_assets.fetch_tokenizer_sources()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"tokenizer sources: {exc}")
        pytest.skip(f"tokenizer sources unavailable: {exc}")
    mirror = tmp_path_factory.mktemp("pengi-mirror")
    gpt2 = pengi_assets.write_tiny_gpt2(
        pengi_assets.hub_snapshot(mirror, GPT2.model_id, GPT2.revision),
        pengi_assets.gpt2_tokenizer(tiktoken_file),
    )
    clip = pengi_assets.write_tiny_clip(
        pengi_assets.hub_snapshot(mirror, CLIP.model_id, CLIP.revision),
        pengi_assets.clip_tokenizer(clip_bpe),
    )
    for config in ("base", "base_no_text_enc"):
        pengi_assets.write_pengi_checkpoint(
            mirror / f"{config}.pth", pengi_home, config, gpt2, clip
        )
    return mirror


@pytest.fixture(scope="module")
def offline_mirror(pengi_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Only the test mirror: no Hugging Face cache, no downloads."""
    scratch = tmp_path_factory.mktemp("pengi-env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(pengi_mirror))
        mp.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(scratch / "weights-cache"))
        mp.setenv("AVSBRIDGE_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(scratch / "no-hf-cache"))
        yield pengi_mirror


@pytest.fixture(scope="module")
def base_texter(pengi_home: Path, offline_mirror: Path) -> object:
    return AUDIO_TEXTERS.create(
        "pengi",
        pengi_home=pengi_home,
        config="base",
        checkpoint_sha256=sha256_file(offline_mirror / "base.pth"),
        **FAST,
    )


def _demo_clip() -> Clip:
    category, name = DEMO_CLIP
    frames = tuple(sorted((DEMO / "visual_frames" / "test" / category / name).glob("*.png")))
    return Clip(
        id=f"s4/{name}",
        subset="demo-s4",
        split="test",
        category=category,
        frames=frames[:3],
        audio=DEMO / "audio_wav" / "test" / category / f"{name}.wav",
        masks=(None,) * 3,
    )


def test_pengi_real_code_describes_a_demo_clip(
    pengi_home: Path, offline_mirror: Path, tmp_path: Path
) -> None:
    """The paper-profile job: describe_shard through Pengi's code, artifact names what ran."""
    configs_before = sorted(p.name for p in (pengi_home / "configs").iterdir())
    sha = sha256_file(offline_mirror / "base.pth")
    out = tmp_path / "alm" / "shard-0"
    options = {"pengi_home": str(pengi_home), "config": "base", "checkpoint_sha256": sha, **FAST}
    describe_shard([_demo_clip()], "pengi", options, "caption", out)
    record = read_json(out / "s4__demo_s4_025.json")
    assert len(record["texts"]) == 3 and all(isinstance(t, str) for t in record["texts"])
    assert record["prompt"] == "Generate audio caption"
    identity = record["backend"]
    assert identity["code"]["commit"] == PENGI_COMMIT
    assert identity["code"]["verified_by"] == "file sha256 manifest"  # the snapshot has no .git
    assert identity["weights_sha256"] == sha
    assert identity["checkpoint"] == {
        "file": "base.pth",
        "sha256": sha,
        "pinned_by": "sha256",
        "dropped_buffers": 2 * 2 + 1,  # 2 GPT-2 layers x (bias, masked_bias) + CLIP position_ids
    }
    assert identity["text_models"]["decoder"]["id"] == "gpt2"
    assert identity["text_models"]["decoder"]["revision"] == GPT2.revision
    assert identity["text_models"]["encoder"]["id"] == "openai/clip-vit-base-patch16"
    assert identity["text_models"]["encoder"]["revision"] == CLIP.revision
    # what the job's provenance record puts where `avsbridge audit` prints it
    extra = _backend_extra({"name": "pengi", "options": options}, identity)
    assert extra["model_ids"]["model"] == f"microsoft/Pengi@{PENGI_COMMIT} config=base"
    assert extra["model_ids"]["text_models.decoder.model"] == f"gpt2@{GPT2.revision}"
    assert extra["model_ids"]["text_models.encoder.model"] == (
        f"openai/clip-vit-base-patch16@{CLIP.revision}"
    )
    assert extra["weights_sha256"]["checkpoint.sha256"] == sha
    # nothing was linked or written into the checkout (../shared is read-only in CI)
    assert sorted(p.name for p in (pengi_home / "configs").iterdir()) == configs_before


def test_pengi_real_generate_inputs(base_texter: object) -> None:
    """Pengi's own preprocessing sees 44.1 kHz input repeated to its 7 s; decoding is seeded."""
    pengi = base_texter._pengi  # type: ignore[attr-defined]
    assert type(pengi).__mro__[1] is base_texter._wrapper_module.PengiWrapper  # type: ignore[attr-defined]
    assert pengi.args.sampling_rate == 44_100 and pengi.args.duration == 7
    assert pengi.args.text_decoder.endswith(f"models--gpt2/snapshots/{GPT2.revision}")
    window = np.sin(np.linspace(0, 440 * 2 * np.pi, 44_100)).astype(np.float32) * 0.5
    texts = base_texter.describe([window, window * 0.1], "Generate audio caption")  # type: ignore[attr-defined]
    assert len(texts) == 2
    assert base_texter.describe([window], "Generate audio caption") == texts[:1]  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "w.wav"
        write_wav(wav, window, 44_100)
        audio = pengi.load_audio_into_tensor(str(wav), pengi.args.duration, resample=True)
    assert audio.shape == (7 * 44_100,)
    np.testing.assert_allclose(audio[:44_100].numpy(), audio[44_100:88_200].numpy())


def _prompt_ids(texter: object, prompt: str) -> list[int]:
    pengi = texter._pengi  # type: ignore[attr-defined]
    tokens = pengi.preprocess_text([prompt], enc_tok=True, add_text=False)
    return tokens["input_ids"][0].tolist()


def test_pengi_prompt_case_per_config(
    pengi_home: Path, offline_mirror: Path, base_texter: object
) -> None:
    """base: CLIP lowercases, capitals give Pengi's own ids; base_no_text_enc: GPT-2 does not."""
    paper, trained = "Generate audio caption", "generate audio caption"
    base = base_texter
    assert _prompt_ids(base, paper) == _prompt_ids(base, trained)
    assert base.identity()["decoding"]["prompt_case"] == "lower"  # type: ignore[attr-defined]
    assert len(_prompt_ids(base, paper)) == 40  # Pengi pads to enc_text_len (encode_plus shim)
    no_enc = AUDIO_TEXTERS.create(
        "pengi",
        pengi_home=pengi_home,
        config="base_no_text_enc",
        checkpoint_sha256=sha256_file(offline_mirror / "base_no_text_enc.pth"),
        **FAST,
    )
    assert no_enc.identity()["text_models"].keys() == {"decoder"}
    assert _prompt_ids(no_enc, paper) != _prompt_ids(no_enc, trained)  # GPT-2 keeps case
    # ... so the adapter hands Pengi the lowercase prompt it was trained on
    assert no_enc.pengi_prompt(paper) == trained
    assert _prompt_ids(no_enc, no_enc.pengi_prompt(paper)) == _prompt_ids(no_enc, trained)
    assert len(no_enc.describe([np.zeros(44_100, dtype=np.float32)], paper)) == 1


def test_pengi_unpinned_checkpoint_with_objects_is_refused(
    pengi_home: Path, offline_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No published hash: torch.load stays weights_only, the Namespace inside is refused."""
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(tmp_path / "fresh-cache"))
    with pytest.raises(ArtifactError, match="weights_only=True.*pin the file's sha256"):
        AUDIO_TEXTERS.create("pengi", pengi_home=pengi_home, config="base", **FAST)
    with pytest.raises(ArtifactError, match="does not match the pinned"):
        AUDIO_TEXTERS.create(
            "pengi", pengi_home=pengi_home, config="base", checkpoint_sha256="0" * 64, **FAST
        )
