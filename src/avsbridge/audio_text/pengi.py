"""Pengi, the ALM of the OpenAVS paper (§3.3, Eq. 4), through its official wrapper.

Pengi is not on PyPI: this adapter runs ``wrapper.PengiWrapper`` from a checkout of
github.com/microsoft/Pengi at commit 31d5e37 given by the ``pengi_home`` option
(``AVSBRIDGE_PENGI_HOME``); the checkout is only read, never written. It runs on the
project's main stack (torch 2.14, transformers 5, ``envs/pengi.yaml``): what Pengi's
2023 code needs there is applied from outside by :mod:`.pengi_compat`.

A thin subclass of ``PengiWrapper`` hands Pengi three things instead of letting it
look them up: the checkpoint (resolved through :mod:`avsbridge.weights`, hash
verified, stale transformers buffers dropped, saved tensors-only in the weights
cache -- nothing is linked into Pengi's folder), and the local snapshot folders of
its two hub models, ``gpt2`` and ``openai/clip-vit-base-patch16``, pinned by
commit. Pengi branches on those path strings ("gpt", "clip", "base"); hub-cache
snapshot paths keep the names, and the adapter checks it.

Pengi reads audio from files at 44.1 kHz, so each window is written to a temporary
16-bit wav and handed over by path; Pengi itself repeats a short clip to fill its
7-s input (its ``load_audio_into_tensor``). Prompts are lowercased: Pengi's
training prompts are lowercase, the ``base`` config's CLIP tokenizer lowercases
anyway, the ``base_no_text_enc`` config's GPT-2 tokenizer does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.audio_text.base import AUDIO_TEXTERS
from avsbridge.audio_text.pengi_compat import (
    add_encode_plus,
    drop_stale_buffers,
    load_checkpoint_state,
    shimmed_modules,
    torchaudio_shim,
)
from avsbridge.backends import model_folder_digest as weights_digest
from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError, atomic_path, content_key, sha256_file, write_wav

log = logging.getLogger("avsbridge.audio_text.pengi")

PENGI_RATE = 44_100
PENGI_CONFIGS = {"base": "base.pth", "base_no_text_enc": "base_no_text_enc.pth"}
PENGI_CODE_URL = "https://github.com/microsoft/Pengi"
PENGI_COMMIT = "31d5e37d0cf5a7bdcdcb4fbd8f2072674f993cea"
# sha256 of the files Pengi runs, at PENGI_COMMIT: identifies a checkout that is not a
# git repository (a tarball, a read-only copy) as that commit.
PENGI_CODE_FILES = {
    "wrapper.py": "07c5ab3cb5d5a6c784217d940058bf1b5b403603d4da0bf11e8b91d3ea41483c",
    "models/__init__.py": "08360e3bd38466d4946ab9520f860b481fe20a8f4dcfb7a0766f5529323baf00",
    "models/audio.py": "1ebba67cd51094b82b6c772eb524aa5869e514118605732a96a6072e70522c98",
    "models/config.py": "8db8afa33063a6c24ef6090962030b0743c2058c7c2f63b121d7f656d5850c69",
    "models/decoder.py": "78f1b386e14232a52ef005f4b1bb4cc8c921922372f7a4f8432ff0bd3dc19a35",
    "models/htsat.py": "7261db3687b6102a47106c1a90d1ea0a4c3d546c05223768f90054a0acfa5375",
    "models/pengi.py": "0ba2a0ffb0bab439f0435474e366dd3b2f53c56f0b7027bfc67f3188f7c25e81",
    "configs/base.yml": "f4ab079dbd5b3e880f218c05bca93cc42d5f64ff8fadf1fbf59dbded105a6bd8",
    "configs/base_no_text_enc.yml": (
        "4bbc05fccca8b23b23d64d24ebb69b7f10e237be860dc2b4091ec835b18422c9"
    ),
}

# Zenodo lists an md5 per file of record 8387083; it could not be read from this
# machine, so neither file is pinned yet: fill ``md5`` in from the record's listing.
# Until then an unpinned checkpoint loads only through torch.load(weights_only=True).
for _config, _filename in PENGI_CONFIGS.items():
    weights.register_source(
        weights.WeightSource(
            name=f"pengi-{_config}",
            filename=_filename,
            url=f"https://zenodo.org/records/8387083/files/{_filename}?download=1",
            sha256=None,
            md5=None,
            licence="MIT (microsoft/Pengi)",
            note="Pengi checkpoint, Zenodo record 8387083 (the record lists md5 only)",
        )
    )

GPT2 = weights.register_hub_model(
    weights.HubModel(
        name="pengi-gpt2",
        model_id="gpt2",
        revision="607a30d783dfa663caf39e06633721c8d4cfcd7e",
        licence="MIT (openai-community/gpt2)",
        note="Pengi's text decoder (configs/*.yml text_decoder)",
    )
)
CLIP = weights.register_hub_model(
    weights.HubModel(
        name="pengi-clip",
        model_id="openai/clip-vit-base-patch16",
        revision="57c216476eefef5ab752ec549e440a49ae4ae5f3",
        licence="MIT (openai/CLIP)",
        note="Pengi's text encoder (configs/base.yml text_model)",
    )
)


def _git_commit(folder: Path) -> str | None:
    """The checkout's commit when it is a git work tree."""
    if not (folder / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_identity(home: Path) -> dict[str, Any]:
    """Which Pengi code runs: commit (from git, or the file manifest) and a digest of the files."""
    hashes = {}
    for name in PENGI_CODE_FILES:
        path = home / name
        hashes[name] = sha256_file(path) if path.is_file() else None
    git = _git_commit(home)
    if hashes == PENGI_CODE_FILES:
        commit, verified_by = git or PENGI_COMMIT, "git" if git else "file sha256 manifest"
    else:
        commit, verified_by = git, "git" if git else None
    return {
        "url": PENGI_CODE_URL,
        "commit": commit,
        "verified_by": verified_by,
        "files_sha256": content_key(hashes),
        "matches_pinned": hashes == PENGI_CODE_FILES,
    }


def _hashes(path: Path, want_md5: bool) -> tuple[str, str | None]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if want_md5 else None
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            if md5 is not None:
                md5.update(block)
    return sha.hexdigest(), md5.hexdigest() if md5 is not None else None


def verify_checkpoint(path: Path, sha256: str | None, md5: str | None) -> tuple[str, str | None]:
    """The file's sha256 and which pin checked it (``None``: unpinned); a mismatch is an error."""
    actual_sha, actual_md5 = _hashes(path, want_md5=md5 is not None)
    if sha256 is not None and actual_sha != sha256.lower():
        raise ArtifactError(path, f"sha256 {actual_sha} does not match the pinned {sha256}")
    if md5 is not None and actual_md5 != md5.lower():
        raise ArtifactError(path, f"md5 {actual_md5} does not match the published {md5}")
    pinned_by = "sha256" if sha256 is not None else "md5" if md5 is not None else None
    return actual_sha, pinned_by


def prepare_checkpoint(
    source: Path, sha256: str, verified: bool, cache: Path
) -> tuple[Path, list[str]]:
    """A tensors-only copy of ``source`` without stale buffers, cached by the source's sha256.

    The copy appears by atomic rename, so parallel jobs may both write it and neither
    sees a partial file; Pengi then loads it with torch's safe default.
    """
    import torch

    converted = cache / f"{source.stem}-{sha256}.pth"
    dropped_record = converted.with_suffix(".dropped.txt")
    if converted.is_file() and dropped_record.is_file():
        return converted, dropped_record.read_text().split()
    state, dropped = drop_stale_buffers(load_checkpoint_state(source, hash_verified=verified))
    with atomic_path(converted) as tmp:
        torch.save({"model": state}, tmp)
    with atomic_path(dropped_record) as tmp:
        tmp.write_text("\n".join(dropped))
    return converted, dropped


def _check_text_path(role: str, folder: Path, must: tuple[str, ...], never: tuple[str, ...]) -> str:
    """Pengi tests ``in`` on these path strings: the folder must read as the model it is."""
    text = str(folder)
    missing = [word for word in must if word not in text]
    wrong = [word for word in never if word in text]
    if missing or wrong:
        raise ValueError(
            f"{folder}: Pengi's {role} folder path must contain {must} and not {never} "
            f"(Pengi branches on these substrings); missing {missing}, present {wrong}"
        )
    return text


def _cuda_index(device: str) -> int | None:
    """``cuda:1`` -> 1; ``cuda`` -> None (the current device); other devices -> None."""
    if device.startswith("cuda:"):
        return int(device.split(":", 1)[1])
    return None


def import_wrapper(home: Path) -> ModuleType:
    """Pengi's ``wrapper.py`` as a module of its own, with the torchaudio shim during import.

    Pengi imports ``models.*`` and ``configs`` by top-level name, so its folder goes
    first on ``sys.path``; a ``models`` package from elsewhere is an error, not a mix.
    Paths are compared resolved (a checkout reached through a symlink is the same one).
    """
    home = Path(home).resolve()
    if sys.path[:1] != [str(home)]:
        sys.path.insert(0, str(home))
    name = "avsbridge_pengi_wrapper_" + hashlib.sha256(str(home).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    loaded = sys.modules.get("models")
    loaded_file = Path(str(getattr(loaded, "__file__", "") or "")).resolve()
    theirs = loaded is not None and home not in loaded_file.parents
    if (home / "models").is_dir() and theirs:
        raise ImportError(
            f"a different 'models' package is already imported ({loaded!r}); "
            f"Pengi at {home} needs its own"
        )
    spec = importlib.util.spec_from_file_location(name, home / "wrapper.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"{home / 'wrapper.py'}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    shim = torchaudio_shim()
    with shimmed_modules({"torchaudio": shim, "torchaudio.transforms": shim.transforms}):
        spec.loader.exec_module(module)
    models = sys.modules.get("models")
    if (home / "models").is_dir() and models is not None:
        if home not in Path(str(getattr(models, "__file__", "") or "")).resolve().parents:
            raise ImportError(f"Pengi at {home} imported another 'models' package ({models!r})")
    sys.modules[name] = module
    return module


def adapted_wrapper_class(
    module: ModuleType, config_file: Path, checkpoint: Path, decoder: str, encoder: str | None
) -> type:
    """``PengiWrapper`` that takes its config, checkpoint and text models from the adapter."""
    base = module.PengiWrapper

    class AdaptedPengiWrapper(base):  # type: ignore[misc, valid-type]
        def read_config_as_args(self, config_path: Any) -> Any:
            args = super().read_config_as_args(config_path)
            args.text_decoder = decoder
            if encoder is not None:
                args.text_model = encoder
            return args

        def get_model_and_tokenizer(self, config_path: Any) -> Any:
            self.config_path = config_file
            self.model_path = checkpoint
            model, enc_tok, dec_tok, args = super().get_model_and_tokenizer(config_file)
            add_encode_plus(enc_tok)
            add_encode_plus(dec_tok)
            return model, enc_tok, dec_tok, args

    return AdaptedPengiWrapper


def _strip_generated(text: str, stop_token: str) -> str:
    """Pengi's decoded beam keeps the stop token; drop it and surrounding blanks."""
    text = text.replace(stop_token.strip(), "") if stop_token.strip() else text
    return " ".join(text.split())


@AUDIO_TEXTERS.register("pengi", gpu=True, env="pengi", mem_mb=12000)
class PengiTexter:
    """Pengi ``generate`` with one ALM prompt per window, beam search, best beam kept.

    Options beyond decoding: ``checkpoint`` (a local file instead of the pinned
    source), ``checkpoint_sha256`` (pin it; needed to unpickle a checkpoint holding
    non-tensor objects when the source has no published hash), ``expected_commit``
    (the Pengi commit the checkout must be; ``None`` accepts any, recorded).
    """

    name = "pengi"
    sample_rate = PENGI_RATE

    def __init__(
        self,
        pengi_home: PathLike[str] | str | None = None,
        config: str = "base",
        max_len: int = 30,
        beam_size: int = 3,
        temperature: float = 1.0,
        stop_token: str = " <|endoftext|>",
        batch_size: int = 16,
        device: str = "auto",
        seed: int = 0,
        checkpoint: PathLike[str] | str | None = None,
        checkpoint_sha256: str | None = None,
        expected_commit: str | None = PENGI_COMMIT,
    ) -> None:
        home = pengi_home or os.environ.get("AVSBRIDGE_PENGI_HOME")
        if not home:
            raise ValueError(
                "pengi backend needs option pengi_home (a checkout of "
                f"{PENGI_CODE_URL} at {PENGI_COMMIT[:7]}) or env AVSBRIDGE_PENGI_HOME"
            )
        self.pengi_home = Path(home).expanduser().resolve()
        if not (self.pengi_home / "wrapper.py").is_file():
            raise FileNotFoundError(f"{self.pengi_home}: no wrapper.py (not a Pengi checkout)")
        if config not in PENGI_CONFIGS:
            raise ValueError(f"unknown Pengi config {config!r} (known: {sorted(PENGI_CONFIGS)})")
        self.config = config
        self.max_len = int(max_len)
        self.beam_size = int(beam_size)
        self.temperature = float(temperature)
        self.stop_token = stop_token
        self.batch_size = max(1, int(batch_size))
        self.device = resolve_device(device)
        self.seed = int(seed)

        self.code = code_identity(self.pengi_home)
        if expected_commit is not None and self.code["commit"] != expected_commit:
            raise ValueError(
                f"{self.pengi_home}: Pengi checkout is not commit {expected_commit} "
                f"(found {self.code['commit'] or 'modified or unknown files'}); "
                "check out that commit or set option expected_commit: null"
            )
        config_file = self.pengi_home / "configs" / f"{config}.yml"
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file}: Pengi config missing")

        source = weights.SOURCES[f"pengi-{config}"]
        self.checkpoint = self._checkpoint_file(checkpoint, source, self.pengi_home)
        sha_pin = checkpoint_sha256 or source.sha256
        md5_pin = None if checkpoint_sha256 else source.md5
        self.weights_sha256, self.pinned_by = verify_checkpoint(self.checkpoint, sha_pin, md5_pin)
        if self.pinned_by is None:
            log.warning("%s: no pinned hash; loading tensors only (weights_only)", self.checkpoint)
        converted, self.dropped_buffers = prepare_checkpoint(
            self.checkpoint,
            self.weights_sha256,
            verified=self.pinned_by is not None,
            cache=weights.cache_dir() / "pengi",
        )

        decoder_dir = weights.resolve_hub_model(GPT2.name)
        decoder = _check_text_path("text decoder", decoder_dir, ("gpt",), ("clip",))
        self.text_models = {"decoder": self._text_ref(GPT2, decoder_dir)}
        encoder: str | None = None
        if config == "base":
            encoder_dir = weights.resolve_hub_model(CLIP.name)
            encoder = _check_text_path("text encoder", encoder_dir, ("clip", "base"), ("gpt",))
            self.text_models["encoder"] = self._text_ref(CLIP, encoder_dir)

        self._wrapper_module = import_wrapper(self.pengi_home)
        wrapper_class = adapted_wrapper_class(
            self._wrapper_module, config_file, converted, decoder, encoder
        )
        self._seed_everything()
        with self._on_device():
            self._pengi = wrapper_class(config=config, use_cuda=self.device.startswith("cuda"))

    @staticmethod
    def _checkpoint_file(
        checkpoint: PathLike[str] | str | None, source: weights.WeightSource, home: Path
    ) -> Path:
        """An explicit file, else the one Pengi's README puts in configs/, else the pinned source.

        Found files are only read: nothing is linked or written into the checkout.
        """
        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{path}: Pengi checkpoint missing")
            return path
        in_checkout = home / "configs" / source.filename
        if in_checkout.is_file():
            return in_checkout
        return weights.resolve(source.name)

    @staticmethod
    def _text_ref(model: weights.HubModel, folder: Path) -> dict[str, Any]:
        """Id, commit and weights of a hub model; ``model`` is ``id@revision`` for audit's lines."""
        return {
            "model": f"{model.model_id}@{model.revision}",
            **weights.hub_model_ref(model.name),
            "weights_sha256": weights_digest(folder),
        }

    @contextlib.contextmanager
    def _on_device(self) -> Iterator[None]:
        """Pengi calls ``.cuda()``: make the configured index the current device meanwhile."""
        if not self.device.startswith("cuda"):
            yield
            return
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"device {self.device!r} configured but CUDA is not available")
        index = _cuda_index(self.device)
        with torch.cuda.device(index) if index is not None else contextlib.nullcontext():
            yield

    def _seed_everything(self) -> None:
        random.seed(self.seed)
        np.random.seed(self.seed)
        try:
            import torch
        except ImportError:
            return
        torch.manual_seed(self.seed)

    @staticmethod
    def pengi_prompt(prompt: str) -> str:
        """The prompt as Pengi was trained on it (lowercase; see the module docstring)."""
        return prompt.lower()

    def identity(self) -> dict[str, Any]:
        commit = self.code["commit"] or f"unverified-files-{self.code['files_sha256'][:12]}"
        return {
            "backend": self.name,
            "model": f"microsoft/Pengi@{commit} config={self.config}",
            "code": self.code,
            "weights_sha256": self.weights_sha256,
            "checkpoint": {
                "file": self.checkpoint.name,
                "sha256": self.weights_sha256,
                "pinned_by": self.pinned_by,
                "dropped_buffers": len(self.dropped_buffers),
            },
            "text_models": self.text_models,
            "decoding": {
                "max_len": self.max_len,
                "beam_size": self.beam_size,
                "temperature": self.temperature,
                "stop_token": self.stop_token,
                "input_rate": PENGI_RATE,
                "prompt_case": "lower",
            },
        }

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        texts: list[str] = []
        prompt = self.pengi_prompt(prompt)
        with tempfile.TemporaryDirectory(prefix="pengi-windows-") as tmp, self._on_device():
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                paths = []
                for offset, window in enumerate(batch):
                    path = Path(tmp) / f"window_{start + offset:05d}.wav"
                    write_wav(path, np.asarray(window, dtype=np.float32), PENGI_RATE)
                    paths.append(str(path))
                self._seed_everything()
                preds = self._pengi.generate(
                    audio_paths=paths,
                    text_prompts=[prompt] * len(paths),
                    add_texts=[""] * len(paths),
                    max_len=self.max_len,
                    beam_size=self.beam_size,
                    temperature=self.temperature,
                    stop_token=self.stop_token,
                )
                if len(preds) != len(paths):
                    raise RuntimeError(
                        f"Pengi returned {len(preds)} answers for {len(paths)} windows"
                    )
                for beams, _scores in preds:
                    texts.append(_strip_generated(beams[0] if beams else "", self.stop_token))
        return texts
