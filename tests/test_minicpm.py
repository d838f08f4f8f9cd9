"""MiniCPM-o-2.6 (SSP's MLLM) without its remote code: the pinned revision, the refusal to
run without a local snapshot, the snapshot resolved from a hub-cache layout, and the calls
the adapter makes -- against a stand-in remote-code package loaded through transformers'
real ``trust_remote_code`` path. The real modeling code and its env stay untested here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from avsbridge.io import ArtifactError
from avsbridge.mllm.minicpm import DEFAULT_REVISION, MODEL_ID, MiniCPMO26

# The stand-in remote code: the file and class names of the hub repo's auto_map, bodies
# that only record what the adapter passes (no weights, no generation).
CONFIGURATION = """
from transformers import PretrainedConfig


class MiniCPMOConfig(PretrainedConfig):
    model_type = "minicpmo"
"""
MODELING = '''
import copy


class MiniCPMO:
    """Records from_pretrained's kwargs and every chat call."""

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModel"):
        pass

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        model = cls()
        model.loaded_from = str(path)
        model.load_kwargs = dict(kwargs)
        model.chats = []
        model.device = None
        model.evaluated = False
        return model

    def eval(self):
        self.evaluated = True
        return self

    def to(self, device):
        self.device = str(device)
        return self

    def chat(self, image=None, msgs=None, tokenizer=None, **kwargs):
        self.chats.append(
            {"image": image, "msgs": copy.copy(msgs), "tokenizer": tokenizer, "kwargs": kwargs}
        )
        return "  a dog and a guitar  "
'''
TOKENIZATION = """
class MiniCPMOTokenizerFast:
    @classmethod
    def register_for_auto_class(cls, auto_class="AutoTokenizer"):
        pass

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        tokenizer = cls()
        tokenizer.loaded_from = str(path)
        tokenizer.load_kwargs = dict(kwargs)
        return tokenizer
"""


def _fake_snapshot(folder: Path) -> Path:
    folder.mkdir(parents=True)
    config = {
        "architectures": ["MiniCPMO"],
        "auto_map": {
            "AutoConfig": "configuration_minicpm.MiniCPMOConfig",
            "AutoModel": "modeling_minicpmo.MiniCPMO",
        },
        "model_type": "minicpmo",
    }
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = {
        "auto_map": {"AutoTokenizer": [None, "tokenization_minicpmo_fast.MiniCPMOTokenizerFast"]},
        "tokenizer_class": "MiniCPMOTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    (folder / "configuration_minicpm.py").write_text(CONFIGURATION)
    (folder / "modeling_minicpmo.py").write_text(MODELING)
    (folder / "tokenization_minicpmo_fast.py").write_text(TOKENIZATION)
    return folder


def _hub_cache(root: Path, revision: str = DEFAULT_REVISION) -> Path:
    """A hub cache holding the pinned snapshot (the layout huggingface_hub resolves)."""
    repo = root / f"models--{MODEL_ID.replace('/', '--')}"
    _fake_snapshot(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return root


def test_revision_is_a_pinned_commit() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", DEFAULT_REVISION)
    with pytest.raises(ValueError, match="40-hex commit"):
        MiniCPMO26(revision="main")


def test_no_local_snapshot_is_refused_naming_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "hub"
    empty.mkdir()
    with pytest.raises(ArtifactError) as info:
        MiniCPMO26(cache_dir=str(empty))
    expected = empty / "models--openbmb--MiniCPM-o-2_6" / "snapshots" / DEFAULT_REVISION
    assert info.value.path == expected
    message = str(info.value)
    assert f"hf download {MODEL_ID} --revision {DEFAULT_REVISION}" in message
    assert "model_path" in message
    # another pinned commit is not silently replaced by the cached one
    other = "0" * 40
    with pytest.raises(ArtifactError, match=f"revision {other}"):
        MiniCPMO26(revision=other, cache_dir=str(_hub_cache(tmp_path / "cached")))


def test_snapshot_resolves_from_the_hub_cache(tmp_path: Path) -> None:
    cache = _hub_cache(tmp_path / "hub")
    backend = MiniCPMO26(cache_dir=str(cache))
    assert backend.folder == cache / "models--openbmb--MiniCPM-o-2_6/snapshots" / DEFAULT_REVISION
    identity = backend.identity()
    assert identity["revision"] == DEFAULT_REVISION and identity["model"] == MODEL_ID
    # the remote code is part of the identity: a changed .py file changes it
    before = identity["code_sha256"]
    (backend.folder / "modeling_minicpmo.py").write_text(MODELING + "\n# patched\n")
    assert MiniCPMO26(cache_dir=str(cache)).identity()["code_sha256"] != before


def test_incomplete_snapshot_names_its_missing_config(tmp_path: Path) -> None:
    cache = _hub_cache(tmp_path / "hub")
    snapshot = cache / "models--openbmb--MiniCPM-o-2_6/snapshots" / DEFAULT_REVISION
    (snapshot / "config.json").unlink()
    with pytest.raises(ArtifactError, match="incomplete snapshot") as info:
        MiniCPMO26(cache_dir=str(cache))
    assert info.value.path == snapshot / "config.json"


def test_adapter_loads_remote_code_pinned_and_chats_like_the_model_card(tmp_path: Path) -> None:
    import torch

    cache = _hub_cache(tmp_path / "hub")
    backend = MiniCPMO26(cache_dir=str(cache), max_new_tokens=7, max_slice_nums=2, device="cpu")
    frames = [np.full((8, 10, 3), v, np.uint8) for v in (10, 200)]
    turns = [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]
    reply = backend.answer(frames, turns)
    assert reply.text == "a dog and a guitar"
    model, tokenizer = backend._model, backend._tokenizer
    # loaded through transformers' real remote-code path (without trust_remote_code=True it
    # would ask on stdin and fail here), at the pinned revision
    assert model.loaded_from == str(backend.folder) and tokenizer.loaded_from == str(backend.folder)
    assert model.load_kwargs["revision"] == DEFAULT_REVISION
    assert tokenizer.load_kwargs["revision"] == DEFAULT_REVISION
    assert tokenizer.load_kwargs["trust_remote_code"] is True
    dtype = model.load_kwargs.get("torch_dtype", model.load_kwargs.get("dtype"))
    assert dtype == torch.bfloat16
    assert model.load_kwargs["trust_remote_code"] is True
    assert model.load_kwargs["config"]._attn_implementation == "sdpa"  # the config takes it
    assert model.load_kwargs["init_vision"] is True
    assert model.load_kwargs["init_audio"] is False and model.load_kwargs["init_tts"] is False
    assert model.evaluated and model.device == "cpu"
    # one chat call: images in the first user turn, none beside it, the card's video params
    (call,) = model.chats
    assert call["image"] is None and call["tokenizer"] is tokenizer
    msgs = call["msgs"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    first = msgs[0]["content"]
    assert len(first) == 3 and first[-1] == "Q1"
    assert [np.asarray(i).tolist() for i in first[:2]] == [f.tolist() for f in frames]
    assert msgs[1]["content"] == ["A1"] and msgs[2]["content"] == ["Q2"]
    assert call["kwargs"] == {
        "sampling": False,
        "max_new_tokens": 7,
        "use_image_id": False,
        "max_slice_nums": 2,
    }
    # the model loads once per job
    backend.answer(frames[:1], [("user", "Q1")])
    assert backend._model is model and len(model.chats) == 2


def test_local_model_path_loads_without_a_revision(tmp_path: Path) -> None:
    folder = _fake_snapshot(tmp_path / "MiniCPM-o-2_6")
    backend = MiniCPMO26(model_path=str(folder), device="cpu")
    assert backend.identity()["revision"] is None
    backend.answer([np.zeros((4, 4, 3), np.uint8)], [("user", "Q")])
    assert backend._model.load_kwargs["revision"] is None
