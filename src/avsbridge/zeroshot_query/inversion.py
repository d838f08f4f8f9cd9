"""Text inversion (BAaV Section 3.2, Eq. 1): pseudo-word embeddings optimised through a frozen
text encoder so the sentence embedding of ``template`` with them matches an audio embedding.

BAaV minimises ``-cos(Psi_a(A), Psi_t(e_d))`` over the token embeddings ``e_d`` of an unknown
word ``d``, Psi_t being the text encoder without its embedding lookup (positions are still
added), and injects the optimised embeddings into the RIS model's text encoder -- possible
because its CLAP was trained against the RIS model's frozen CLIP text encoder. No released
CLAP shares a RIS model's text space, so here the optimisation runs through the text encoder
that *does* share the audio embedding's space (CLAP's own; MiniLM in the demo), and the RIS
model is handed what it can read: the pseudo-words discretised to the nearest vocabulary
words of that encoder's input embedding table. ``method`` chooses how:

- ``pez`` (default): projected gradient descent of Wen et al. 2023 ("Hard Prompts Made Easy",
  Algorithm 1): the loss is computed on the nearest-word projection of the continuous
  embeddings, its gradient updates the continuous ones, and the best projected prompt seen
  is kept -- the optimised object is then a prompt the RIS model reads exactly;
- ``continuous``: plain textual inversion (Gal et al. 2022) of continuous embeddings,
  projected to the nearest words once at the end (the gap is reported: ``loss_end`` vs
  ``query_cosine``).

Everything is seeded (the initial words are drawn with ``seed``) and CPU-deterministic; the
record keeps the target's digest, the words, the loss curve and the query's own cosine, i.e.
the query re-encoded through the encoder's ordinary tokenizer path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHODS = ("pez", "continuous")
CURVE_EVERY = 10  # loss curve kept every this many steps (and the last step)


@dataclass(frozen=True)
class InversionSettings:
    """The optimisation's parameters (params.yaml ``zeroshot_inversion``)."""

    tokens: int = 2
    steps: int = 100
    lr: float = 0.1
    weight_decay: float = 0.1
    seed: int = 0
    template: str = "A photo of {}"
    method: str = "pez"

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "params.yaml") -> Any:
        """Validated settings; a bad value names ``where`` (the file) and the key."""
        params = dict(params or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{where}: zeroshot_inversion has unknown key(s) {unknown}")
        s = cls(**params)
        problems = []
        if not (isinstance(s.tokens, int) and 1 <= s.tokens <= 16):
            problems.append(f"tokens={s.tokens!r} (an integer 1..16)")
        if not (isinstance(s.steps, int) and s.steps >= 1):
            problems.append(f"steps={s.steps!r} (an integer >= 1)")
        if not (isinstance(s.lr, int | float) and s.lr > 0):
            problems.append(f"lr={s.lr!r} (> 0)")
        if not (isinstance(s.weight_decay, int | float) and s.weight_decay >= 0):
            problems.append(f"weight_decay={s.weight_decay!r} (>= 0)")
        if not isinstance(s.seed, int):
            problems.append(f"seed={s.seed!r} (an integer)")
        if not (isinstance(s.template, str) and s.template.count("{}") == 1):
            problems.append(f"template={s.template!r} (one '{{}}' for the pseudo-words)")
        if s.method not in METHODS:
            problems.append(f"method={s.method!r} (one of {', '.join(METHODS)})")
        if problems:
            raise ValueError(f"{where}: zeroshot_inversion: bad " + "; ".join(problems))
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FrozenTextEncoder:
    """What inversion needs of a text encoder (all parts frozen).

    ``embeddings`` is the input embedding table (V x d); ``encode_embeds(x, mask)`` maps
    input embeddings (1 x L x d) to the sentence embedding in the audio's space;
    ``encode_texts`` is the ordinary tokenizer path (texts -> embeddings), used to score
    the final query exactly as a reader of the string would see it.
    """

    tokenizer: Any
    embeddings: Any
    encode_embeds: Callable[[Any, Any], Any]
    encode_texts: Callable[[list[str]], Any]
    name: str = ""


def memo_key(target: Any, settings: InversionSettings) -> tuple[str, str]:
    """Same target, same settings -> the same (deterministic) run: S4 frames share a wav."""
    return embedding_digest(target)["sha256"], repr(settings)


def embedding_digest(vector: Any) -> dict[str, Any]:
    """sha256 of the float32 target (and its size): provenance without the vector itself."""
    arr = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
    return {
        "dim": int(arr.size),
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
        "norm": round(float(np.linalg.norm(arr)), 6),
    }


def word_vocabulary(tokenizer: Any) -> tuple[list[int], list[str]]:
    """Token ids that are whole alphabetic words (>= 2 letters) the tokenizer gives back as
    themselves after a space, so a query written with them re-tokenises to the same ids."""
    size = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids, words = [], []
    for i in range(size):
        if i in special:
            continue
        word = tokenizer.decode([i]).strip()
        if len(word) >= 2 and word.isascii() and word.isalpha():
            ids.append(i)
            words.append(word)
    if not ids:
        return [], []
    encoded = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    keep = [(i, w) for i, w, e in zip(ids, words, encoded, strict=True) if list(e) == [i]]
    return [i for i, _ in keep], [w for _, w in keep]


def template_ids(
    tokenizer: Any, template: str, tokens: int, placeholder: tuple[int, str]
) -> tuple[list[int], list[int]]:
    """Input ids of ``template`` (special tokens added) with ``tokens`` slots, and the slot
    positions. The slots are found by writing a single-token ``placeholder`` word there."""
    slot_id, word = placeholder
    text = template.format(" ".join([word] * tokens))
    full = list(tokenizer(text)["input_ids"])
    body = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prefix = template.split("{}")[0].rstrip()
    pre = list(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
    start = next(
        (s for s in range(len(full) - len(body) + 1) if full[s : s + len(body)] == body), None
    )
    slots = [len(pre) + j for j in range(tokens)]
    if start is None or body[: len(pre)] != pre or [body[j] for j in slots] != [slot_id] * tokens:
        raise ValueError(
            f"template {template!r}: its prefix does not tokenise apart from the pseudo-words"
        )
    return full, [start + j for j in slots]


def invert(
    encoder: FrozenTextEncoder,
    target: Any,
    settings: InversionSettings,
    vocabulary: tuple[list[int], list[str]] | None = None,
) -> dict[str, Any]:
    """Optimise ``settings.tokens`` pseudo-words against ``target``; the record of the run."""
    import torch

    vocab_ids, vocab_words = vocabulary or word_vocabulary(encoder.tokenizer)
    if not vocab_ids:
        raise ValueError(f"{encoder.name}: the tokenizer has no whole-word tokens to project on")
    table = encoder.embeddings.detach()
    device, dtype = table.device, table.dtype
    words_t = table[torch.as_tensor(vocab_ids, device=device)]  # W x d
    words_n = torch.nn.functional.normalize(words_t, dim=-1)
    target_t = torch.as_tensor(np.asarray(target, dtype=np.float32), device=device).reshape(-1)
    target_t = torch.nn.functional.normalize(target_t.to(dtype), dim=0)

    ids, slots = template_ids(
        encoder.tokenizer, settings.template, settings.tokens, (vocab_ids[0], vocab_words[0])
    )
    base = table[torch.as_tensor(ids, device=device)].unsqueeze(0)  # 1 x L x d
    mask = torch.ones((1, len(ids)), dtype=torch.long, device=device)
    slot_index = torch.as_tensor(slots, device=device)

    gen = torch.Generator().manual_seed(int(settings.seed))
    start = torch.randint(len(vocab_ids), (settings.tokens,), generator=gen).tolist()
    param = torch.nn.Parameter(words_t[torch.as_tensor(start, device=device)].clone())
    optimiser = torch.optim.AdamW(
        [param], lr=float(settings.lr), weight_decay=float(settings.weight_decay)
    )

    def nearest(p: Any) -> Any:
        return torch.argmax(torch.nn.functional.normalize(p, dim=-1) @ words_n.T, dim=-1)

    def loss_of(slot_embeds: Any) -> Any:
        x = base.clone()
        x[0, slot_index] = slot_embeds
        emb = encoder.encode_embeds(x, mask).reshape(-1)
        return 1.0 - torch.nn.functional.cosine_similarity(emb, target_t, dim=0)

    curve: list[list[float]] = []
    best_loss, best_words = float("inf"), start
    for step in range(settings.steps):
        if settings.method == "pez":
            picked = nearest(param)
            projected = words_t[picked]
            # straight-through: the loss of the projected words, the gradient to ``param``
            loss = loss_of(param + (projected - param).detach())
            if loss.item() < best_loss:
                best_loss, best_words = loss.item(), picked.tolist()
        else:
            loss = loss_of(param)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % CURVE_EVERY == 0 or step == settings.steps - 1:
            curve.append([step, round(loss.item(), 6)])
    with torch.no_grad():
        if settings.method == "continuous":
            final_continuous = float(loss_of(param))
            best_words = nearest(param).tolist()
            best_loss = float(loss_of(words_t[torch.as_tensor(best_words, device=device)]))
        else:
            final_continuous = None
        chosen = [vocab_words[i] for i in best_words]
        query = settings.template.format(" ".join(chosen))
        q = torch.as_tensor(np.asarray(encoder.encode_texts([query]), dtype=np.float32))
        q = q.reshape(-1).to(device=device, dtype=dtype)
        cosine = float(torch.nn.functional.cosine_similarity(q, target_t, dim=0))
    out: dict[str, Any] = {
        "pseudo_words": chosen,
        "pseudo_word_ids": [int(vocab_ids[i]) for i in best_words],
        "initial_words": [vocab_words[i] for i in start],
        "loss_start": curve[0][1],
        "loss_end": curve[-1][1],
        "loss_best_discrete": round(best_loss, 6),
        "loss_curve": curve,
        "query": query,
        "query_cosine": round(cosine, 6),
    }
    if final_continuous is not None:
        out["loss_end_continuous"] = round(final_continuous, 6)
    return out


# --- frozen encoders of the two profiles -------------------------------------------------------


def _frozen(model: Any) -> Any:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def mean_pooled_encoder(model: Any, tokenizer: Any, name: str = "") -> FrozenTextEncoder:
    """A BERT-style encoder read as sentence-transformers does: mean of the token states over
    the attention mask, L2-normalised (all-MiniLM-L6-v2's Pooling(mean) + Normalize)."""
    import torch

    model = _frozen(model)

    def encode_embeds(x: Any, mask: Any) -> Any:
        states = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def encode_texts(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            t = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
            t = t.to(model.device)
            x = model.get_input_embeddings()(t["input_ids"])
            return encode_embeds(x, t["attention_mask"]).cpu().numpy()

    return FrozenTextEncoder(
        tokenizer=tokenizer,
        embeddings=model.get_input_embeddings().weight,
        encode_embeds=encode_embeds,
        encode_texts=encode_texts,
        name=name,
    )


def clap_text_encoder(model: Any, tokenizer: Any, name: str = "") -> FrozenTextEncoder:
    """CLAP's text tower (RoBERTa + projection) from input embeddings: ``get_text_features``
    with the word-embedding lookup replaced by the given embeddings."""
    import torch

    model = _frozen(model)

    def encode_embeds(x: Any, mask: Any) -> Any:
        pooled = model.text_model(inputs_embeds=x, attention_mask=mask).pooler_output
        return torch.nn.functional.normalize(model.text_projection(pooled), dim=-1)

    def encode_texts(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            t = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
            out = model.get_text_features(**t)
            return getattr(out, "pooler_output", out).cpu().numpy()

    return FrozenTextEncoder(
        tokenizer=tokenizer,
        embeddings=model.text_model.embeddings.word_embeddings.weight,
        encode_embeds=encode_embeds,
        encode_texts=encode_texts,
        name=name,
    )
