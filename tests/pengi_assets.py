"""Test assets for running Pengi's real code offline: tokenizers, tiny text models, checkpoints.

* GPT-2's tokenizer is rebuilt from ``whisper/assets/gpt2.tiktoken`` in PyPI's
  openai-whisper *source* package (GPT-2's 50,256 byte-level BPE ranks), CLIP's
  from ``open_clip/bpe_simple_vocab_16e6.txt.gz`` in PyPI's open-clip-torch wheel
  (OpenAI CLIP's BPE file). :func:`pypi_asset` downloads the package with pip
  (no install, no deps), checks the member file's sha256 and caches it under
  ``$AVSBRIDGE_TEST_ASSETS`` (default ``.cache/test-assets`` in the repo, ignored by
  git), so a second run, or a CI job that ran the download step, needs no network.
* The two text models are random-initialised and tiny, with the real vocabularies,
  saved under their real names in the hub-cache layout of a weights mirror
  (``hub/models--gpt2/snapshots/<pinned revision>``), where the adapter finds them.
* The Pengi checkpoint is built by Pengi's own ``models.pengi.PENGI`` from its
  ``configs/*.yml`` (full-size HTSAT audio encoder and mappers, tiny text models)
  and saved in the format of the published files: ``{"model": state_dict}`` with
  DataParallel's ``module.`` prefix, plus what a transformers 4.28 save carried
  (GPT-2 ``attn.bias`` / ``attn.masked_bias``, CLIP ``position_ids``) and non-tensor
  training state (an ``argparse.Namespace``), which ``weights_only=True`` refuses.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

WHISPER = ("openai-whisper", "20250625")
OPEN_CLIP = ("open-clip-torch", "3.3.0")
GPT2_TIKTOKEN = (
    "whisper/assets/gpt2.tiktoken",
    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
)
CLIP_BPE = (
    "open_clip/bpe_simple_vocab_16e6.txt.gz",
    "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
)


def asset_cache() -> Path:
    return Path(os.environ.get("AVSBRIDGE_TEST_ASSETS", str(REPO / ".cache" / "test-assets")))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _member(archive: Path, suffix: str) -> bytes:
    """The archive member whose path ends with ``suffix`` (sdist tar.gz or wheel zip)."""
    if archive.name.endswith(".whl") or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(suffix)]
            if names:
                return zf.read(names[0])
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.name.endswith(suffix) and info.isfile():
                    handle = tf.extractfile(info)
                    if handle is not None:
                        return handle.read()
    raise FileNotFoundError(f"{archive}: no member ending in {suffix}")


def pypi_asset(package: tuple[str, str], member: tuple[str, str], source: bool) -> Path:
    """One file out of a pinned PyPI package, sha256-checked, cached; pip download only."""
    (name, version), (suffix, sha256) = package, member
    cached = asset_cache() / f"{name}-{version}" / Path(suffix).name
    if cached.is_file() and _sha256(cached) == sha256:
        return cached
    kind = ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]
    errors = []
    for attempt in range(3):
        with tempfile.TemporaryDirectory(prefix="pengi-asset-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *kind]
            cmd += ["-d", tmp, f"{name}=={version}"]
            try:
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
                archives = sorted(Path(tmp).iterdir())
                data = _member(archives[0], suffix)
            except (subprocess.SubprocessError, OSError, IndexError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                errors.append(f"attempt {attempt + 1}: {detail.strip()[-300:]}")
                time.sleep(2 * (attempt + 1))
                continue
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{name}=={version}:{suffix} does not have sha256 {sha256}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_file = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp_file, 0o644)  # mkstemp's 0600 would hide a shared cache from others
        os.replace(tmp_file, cached)
        return cached
    raise RuntimeError(f"pip download {name}=={version} failed: " + " | ".join(errors))


def fetch_tokenizer_sources() -> tuple[Path, Path]:
    """(gpt2.tiktoken, bpe_simple_vocab_16e6.txt.gz), downloaded once into the cache."""
    return (
        pypi_asset(WHISPER, GPT2_TIKTOKEN, source=True),
        pypi_asset(OPEN_CLIP, CLIP_BPE, source=False),
    )


# --- tokenizers ----------------------------------------------------------------------------


def _byte_encoder() -> dict[int, str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def _bpe_split(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """The two parts BPE merged last to make ``token`` (tiktoken's merge order)."""
    parts = [bytes([b]) for b in token]
    while True:
        best, best_rank = None, None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best_rank is None or rank < best_rank):
                best, best_rank = i, rank
        if best is None:
            return parts
        parts = parts[:best] + [parts[best] + parts[best + 1]] + parts[best + 2 :]


def gpt2_tokenizer(tiktoken_file: Path) -> Any:
    """GPT-2's tokenizer from its tiktoken ranks: vocab = ranks, merges in rank order."""
    import base64

    from transformers import GPT2Tokenizer

    ranks: dict[bytes, int] = {}
    for line in tiktoken_file.read_text().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    enc = _byte_encoder()

    def text(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            parts = _bpe_split(ranks, token, rank)
            if len(parts) != 2:
                raise ValueError(f"{tiktoken_file}: token {token!r} is not one merge")
            merges.append((text(parts[0]), text(parts[1])))
    vocab["<|endoftext|>"] = len(vocab)
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def clip_tokenizer(bpe_file: Path) -> Any:
    """CLIP's tokenizer from OpenAI's BPE file, the vocabulary built as CLIP builds it."""
    from transformers import CLIPTokenizer

    lines = gzip.open(bpe_file).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    chars = list(_byte_encoder().values())
    words = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    words += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {word: i for i, word in enumerate(words)}
    return CLIPTokenizer(vocab=vocab, merges=merges)


# --- tiny text models under their real names ------------------------------------------------


def hub_snapshot(mirror: Path, model_id: str, revision: str) -> Path:
    return mirror / "hub" / ("models--" + model_id.replace("/", "--")) / "snapshots" / revision


def write_tiny_gpt2(folder: Path, tokenizer: Any, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2, n_head=2
    )  # n_embd divisible by 8: Pengi's mapper has 8 heads
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_clip(folder: Path, tokenizer: Any, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        projection_dim=512,  # Pengi: 'base' in the name -> a 512-d text embedding
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --- Pengi checkpoints in the published format ---------------------------------------------


def write_pengi_checkpoint(
    path: Path, pengi_home: Path, config: str, gpt2: Path, clip: Path, seed: int = 0
) -> Path:
    """Random Pengi weights built by Pengi's own model code, saved as the published files are."""
    import torch
    import yaml

    if str(pengi_home) not in sys.path:
        sys.path.insert(0, str(pengi_home))
    from models.pengi import PENGI  # Pengi's code, read from the checkout

    args = yaml.safe_load((pengi_home / "configs" / f"{config}.yml").read_text())
    text_model = str(clip) if args["use_text_model"] else str(gpt2)
    torch.manual_seed(seed)
    model = PENGI(
        audioenc_name=args["audioenc_name"],
        sample_rate=args["dataset_config"]["sampling_rate"],
        window_size=args["window_size"],
        hop_size=args["hop_size"],
        mel_bins=args["mel_bins"],
        fmin=args["fmin"],
        fmax=args["fmax"],
        classes_num=None,
        out_emb=args["out_emb"],
        specaug=args["specaug"],
        mixup=args["mixup"],
        use_text_encoder=args["use_text_model"],
        text_encoder=text_model,
        text_encoder_embed_dim=args["transformer_embed_dim"],
        freeze_text_encoder_weights=args["freeze_text_encoder_weights"],
        text_decoder=str(gpt2),
        prefix_length=args["prefix_length"],
        clip_length=args["prefix_length_clip"],
        prefix_size=args["d_proj"],
        num_layers=args["num_layers"],
        normalize_prefix=args["normalize_prefix"],
        mapping_type=args["mapping_type"],
        freeze_text_decoder_weights=args["freeze_gpt_weights"],
        d_proj=args["d_proj"],
        use_pretrained_audioencoder=args["use_pretrained_audioencoder"],
        freeze_audio_encoder_weights=args["freeze_audio_encoder_weights"],
    )
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    gpt = model.caption_decoder.gpt.config
    mask = torch.tril(torch.ones((gpt.n_positions, gpt.n_positions), dtype=torch.bool))
    for layer in range(gpt.n_layer):  # what transformers 4.28 persisted for GPT-2
        prefix = f"module.caption_decoder.gpt.transformer.h.{layer}.attn"
        state[f"{prefix}.bias"] = mask.view(1, 1, gpt.n_positions, gpt.n_positions)
        state[f"{prefix}.masked_bias"] = torch.tensor(-1e4)
    if args["use_text_model"]:
        state["module.caption_encoder.base.embeddings.position_ids"] = torch.arange(77)[None]
    training = argparse.Namespace(epochs=30, lr=1e-4, config=config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "epoch": 30, "args": training}, path)
    return path
