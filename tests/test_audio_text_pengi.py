"""Pengi adapter logic that needs no model: pins, checkout identity, checkpoint handling, device.

Pengi's real code runs in ``test_audio_text_pengi_real.py``; here a stand-in
``wrapper.py`` with the real one's structure (``__init__`` -> ``read_config_as_args``
/ ``get_model_and_tokenizer`` -> ``torch.load(self.model_path)``; ``generate``)
records what the adapter hands over, so device and batching are checked fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from avsbridge import weights
from avsbridge.audio_text import AUDIO_TEXTERS, prompt_text
from avsbridge.audio_text.pengi import (
    PENGI_CODE_FILES,
    PENGI_COMMIT,
    _check_text_path,
    _cuda_index,
    code_identity,
    prepare_checkpoint,
    verify_checkpoint,
)
from avsbridge.audio_text.pengi_compat import drop_stale_buffers
from avsbridge.io import ArtifactError

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = REPO.parent / "shared" / "upstream" / "Pengi"

STAND_IN_WRAPPER = """
import argparse
import wave

import torch
import yaml

CALLS = []


class PengiWrapper:
    def __init__(self, config, use_cuda=False):
        self.use_cuda = use_cuda
        self.model, self.enc_tokenizer, self.dec_tokenizer, self.args = (
            self.get_model_and_tokenizer(config_path="configs/" + config + ".yml")
        )
        CALLS.append(dict(kind="init", device=torch.cuda.current_device() if use_cuda else None))

    def read_config_as_args(self, config_path):
        with open(config_path) as f:
            return argparse.Namespace(**yaml.safe_load(f))

    def get_model_and_tokenizer(self, config_path):
        args = self.read_config_as_args(config_path)
        state = torch.load(self.model_path, map_location="cpu")["model"]
        return state, argparse.Namespace(), argparse.Namespace(), args

    def generate(self, audio_paths, text_prompts, add_texts, max_len, beam_size,
                 temperature, stop_token, audio_resample=True):
        CALLS.append(dict(kind="generate", paths=list(audio_paths), prompts=list(text_prompts),
                          max_len=max_len, beam_size=beam_size, stop_token=stop_token,
                          device=torch.cuda.current_device() if self.use_cuda else None))
        preds = []
        for path, prompt in zip(audio_paths, text_prompts):
            with wave.open(path, "rb") as wf:
                rate, n = wf.getframerate(), wf.getnframes()
            preds.append(([f"{prompt} at {rate} hz for {n} samples{stop_token}"], [0.9]))
        return preds
"""


@pytest.fixture
def hub_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror with the two pinned hub snapshots (config only: the stand-in loads nothing)."""
    mirror = tmp_path / "mirror"
    for name in ("pengi-gpt2", "pengi-clip"):
        model = weights.HUB_MODELS[name]
        folder = mirror / "hub" / model.cache_folder / "snapshots" / model.revision
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(name.encode())
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(mirror))
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(tmp_path / "cache"))
    return mirror


@pytest.fixture
def stand_in_home(tmp_path: Path, hub_mirror: Path) -> Path:
    home = tmp_path / "Pengi"
    (home / "configs").mkdir(parents=True)
    (home / "wrapper.py").write_text(STAND_IN_WRAPPER)
    (home / "configs" / "base.yml").write_text("text_model: openai/clip-vit-base-patch16\n")
    torch.save({"model": {"w": torch.ones(2)}}, hub_mirror / "base.pth")
    yield home
    for name in [n for n in sys.modules if n.startswith("avsbridge_pengi_wrapper_")]:
        sys.modules.pop(name)


def _wrapper_calls(texter: object) -> list[dict]:
    return texter._wrapper_module.CALLS  # type: ignore[attr-defined]


def test_pengi_needs_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVSBRIDGE_PENGI_HOME", raising=False)
    with pytest.raises(ValueError, match="pengi_home"):
        AUDIO_TEXTERS.create("pengi")
    with pytest.raises(FileNotFoundError, match="wrapper.py"):
        AUDIO_TEXTERS.create("pengi", pengi_home=tmp_path)


def test_pengi_adapter_hands_over_checkpoint_text_models_and_windows(
    stand_in_home: Path, hub_mirror: Path, tmp_path: Path
) -> None:
    texter = AUDIO_TEXTERS.create(
        "pengi", pengi_home=stand_in_home, device="cpu", batch_size=2, expected_commit=None
    )
    args = texter._pengi.args
    assert args.text_decoder.endswith(
        "models--gpt2/snapshots/" + weights.HUB_MODELS["pengi-gpt2"].revision
    )
    assert "models--openai--clip-vit-base-patch16/snapshots/" in args.text_model
    assert Path(texter._pengi.model_path).parent == tmp_path / "cache" / "pengi"  # not the checkout
    assert sorted(p.name for p in (stand_in_home / "configs").iterdir()) == ["base.yml"]
    windows = [np.full(44_100, 0.1 * (i + 1), dtype=np.float32) for i in range(3)]
    texts = texter.describe(windows, prompt_text("caption"))
    assert texts == ["generate audio caption at 44100 hz for 44100 samples"] * 3
    calls = [c for c in _wrapper_calls(texter) if c["kind"] == "generate"]
    assert [len(c["paths"]) for c in calls] == [2, 1]  # batch_size respected
    assert calls[0]["prompts"] == ["generate audio caption"] * 2  # lowercased for Pengi
    assert not Path(calls[0]["paths"][0]).exists(), "temporary window files are cleaned up"
    identity = texter.identity()
    assert (
        identity["weights_sha256"]
        == hashlib.sha256((hub_mirror / "base.pth").read_bytes()).hexdigest()
    )
    assert identity["checkpoint"]["pinned_by"] is None  # no published hash: tensors-only load
    assert identity["code"]["commit"] is None and identity["code"]["matches_pinned"] is False
    assert (
        identity["text_models"]["encoder"]["revision"] == weights.HUB_MODELS["pengi-clip"].revision
    )


def test_pengi_configured_cuda_index_is_the_current_device(
    stand_in_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cuda:1 stays cuda:1: Pengi's bare .cuda() calls run inside torch.cuda.device(1)."""
    current = [0]

    class FakeDevice:
        def __init__(self, index: int) -> None:
            self.index, self.saved = index, None

        def __enter__(self) -> None:
            self.saved, current[0] = current[0], self.index

        def __exit__(self, *exc: object) -> None:
            current[0] = self.saved

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", FakeDevice)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    texter = AUDIO_TEXTERS.create(
        "pengi", pengi_home=stand_in_home, device="cuda:1", expected_commit=None
    )
    texter.describe([np.zeros(44_100, dtype=np.float32)], "This is a sound of")
    assert [c["device"] for c in _wrapper_calls(texter)] == [1, 1]
    assert current[0] == 0  # restored afterwards
    assert _cuda_index("cuda:1") == 1 and _cuda_index("cuda") is None


def test_pengi_checkout_identity(tmp_path: Path) -> None:
    """The read-only snapshot (no .git) is recognised as 31d5e37 by its files; a change is not."""
    if not (UPSTREAM / "wrapper.py").is_file():
        pytest.skip(f"no Pengi snapshot at {UPSTREAM}")
    ident = code_identity(UPSTREAM)
    assert (ident["commit"], ident["verified_by"]) == (PENGI_COMMIT, "file sha256 manifest")
    copy = tmp_path / "Pengi"
    for name in PENGI_CODE_FILES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(UPSTREAM / name, copy / name)
    assert code_identity(copy)["commit"] == PENGI_COMMIT
    (copy / "models" / "decoder.py").write_text("# changed\n")
    changed = code_identity(copy)
    assert changed["commit"] is None and changed["files_sha256"] != ident["files_sha256"]
    with pytest.raises(ValueError, match="not commit 31d5e37"):
        AUDIO_TEXTERS.create("pengi", pengi_home=copy, device="cpu")


def test_stale_transformers_buffers_are_dropped() -> None:
    state = {
        "module.caption_decoder.gpt.transformer.h.0.attn.bias": 1,
        "module.caption_decoder.gpt.transformer.h.0.attn.masked_bias": 2,
        "module.caption_decoder.gpt.transformer.h.0.attn.c_attn.bias": 3,  # a real weight
        "module.caption_encoder.base.embeddings.position_ids": 4,
        "module.caption_encoder.base.embeddings.token_embedding.weight": 5,
    }
    kept, dropped = drop_stale_buffers(state)
    assert sorted(kept.values()) == [3, 5] and len(dropped) == 3


def test_checkpoint_hash_pins(tmp_path: Path) -> None:
    path = tmp_path / "base.pth"
    path.write_bytes(b"checkpoint bytes")
    sha = hashlib.sha256(b"checkpoint bytes").hexdigest()
    md5 = hashlib.md5(b"checkpoint bytes").hexdigest()
    assert verify_checkpoint(path, sha, None) == (sha, "sha256")
    assert verify_checkpoint(path, None, md5) == (sha, "md5")
    assert verify_checkpoint(path, None, None) == (sha, None)
    with pytest.raises(ArtifactError, match="base.pth.*md5"):
        verify_checkpoint(path, None, "0" * 32)
    source = dataclasses.replace(weights.SOURCES["pengi-base"], md5="0" * 32)
    with pytest.raises(ArtifactError, match="md5 .* does not match the published"):
        weights._verified(path, source)


def test_converted_checkpoint_is_safe_under_concurrency(tmp_path: Path) -> None:
    """Parallel shard jobs each write the converted file; rename makes one complete winner."""
    source = tmp_path / "base.pth"
    torch.save({"model": {"module.w": torch.arange(1000.0)}, "epoch": 3}, source)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    results, errors = [], []

    def job() -> None:
        try:
            results.append(prepare_checkpoint(source, sha, verified=False, cache=tmp_path / "c"))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    converted = {path for path, _ in results}
    assert len(converted) == 1
    loaded = torch.load(converted.pop(), weights_only=True)
    assert torch.equal(loaded["model"]["module.w"], torch.arange(1000.0))
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]


def test_text_model_paths_must_read_as_their_model(tmp_path: Path) -> None:
    """Pengi tests 'gpt' / 'clip' / 'base' in the path strings; a misleading path is refused."""
    assert _check_text_path("decoder", tmp_path / "models--gpt2", ("gpt",), ("clip",))
    with pytest.raises(ValueError, match="must contain"):
        _check_text_path("encoder", tmp_path / "gpt-work" / "clip-base", ("clip", "base"), ("gpt",))


def test_hub_models_resolve_from_the_mirror_only_at_the_pin(
    hub_mirror: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = weights.resolve_hub_model("pengi-gpt2")
    assert folder.parts[-3:] == (
        "models--gpt2",
        "snapshots",
        weights.HUB_MODELS["pengi-gpt2"].revision,
    )
    assert weights.hub_model_ref("pengi-gpt2") == {
        "id": "gpt2",
        "revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
    }
    shutil.rmtree(folder)  # another revision present is not the pinned one
    (folder.parent / ("f" * 40)).mkdir()
    (folder.parent / ("f" * 40) / "config.json").write_text("{}")
    monkeypatch.setenv("AVSBRIDGE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(FileNotFoundError, match="gpt2@607a30d"):
        weights.resolve_hub_model("pengi-gpt2")
