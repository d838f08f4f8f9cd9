"""The training loop every student shares: epochs, per-epoch state, resume, DVCLive.

Resume contract: after every finished epoch the full state (model, optimiser,
torch/numpy/python RNG, metric history) is written atomically to
``.{name}.work/state.pt`` beside the checkpoint folder. A re-run with the same
resolved config continues from the epoch after it (no epoch lost or repeated);
the sample order of epoch ``e`` is a pure function of ``(seed, e)``, so on CPU
with a fixed seed the final weights equal an uninterrupted run's byte for byte
(tests/test_train_resume.py kills a run with SIGKILL to check). A state written
under another config is set aside (``state.stale-<key>.pt``), never deleted.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avsbridge.io import atomic_dir, atomic_path, atomic_write_json, content_key, sha256_file
from avsbridge.train import checkpoint as ck
from avsbridge.train.base import Student
from avsbridge.train.data import ClipDataset, Sample, collate

log = logging.getLogger("avsbridge.train")

# Test hook: SIGKILL this process right after epoch N's state is saved (resume tests).
KILL_ENV = "AVSBRIDGE_TRAIN_KILL_AFTER_EPOCH"
STATE = "state.pt"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/inf; the message names the epoch and the state that is kept."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    threads: int | None = None
    val_clips: int = 0


def resolve(
    student_cls: type[Student], kind: str, params: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(student options, hyper-parameters): official recipe <- params <- params[kind]."""
    params = dict(params or {})
    recipe = student_cls.recipe(kind)
    per_kind = params.pop(kind, None) or {}
    for other in ("s4", "ms3", "v3", "avss"):
        params.pop(other, None)
    options = {**recipe.get("options", {}), **(params.pop("options", None) or {})}
    options.update(per_kind.pop("options", None) or {})
    hyper = {k: v for k, v in recipe.items() if k != "options"}
    hyper.update(params)
    hyper.update(per_kind)
    return options, hyper


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def _iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def evaluate(student: Student, model: torch.nn.Module, loader: Any, device: str) -> float:
    """Mean per-frame IoU at 0.5 on labelled frames (the held-out clips' labels)."""
    model.eval()
    scores = []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            logits = student.forward(model, batch).logits
            assert batch.masks is not None
            target = batch.masks.flatten(0, 1) > 0.5
            if target.shape[-2:] != logits.shape[-2:]:
                target = torch.nn.functional.interpolate(
                    target.float(), size=logits.shape[-2:], mode="nearest"
                ).bool()
            iou = _iou(torch.sigmoid(logits) > 0.5, target)
            valid = batch.extra.get("valid")
            if valid is not None:
                iou = iou[valid.flatten()]
            scores.append(iou.cpu())
    model.train()
    return float(torch.cat(scores).mean()) if scores else float("nan")


class _Live:
    """DVCLive, rebuilt from the history on every (re)start so a kill between the state
    write and the log line never loses or doubles a step."""

    def __init__(self, folder: Path, history: list[dict[str, Any]]) -> None:
        from dvclive import Live

        shutil.rmtree(folder, ignore_errors=True)
        self.live = Live(str(folder), report=None, save_dvc_exp=False, dvcyaml=None)
        for entry in history:
            self.log(entry)

    def log(self, entry: dict[str, Any]) -> None:
        for key, value in entry.items():
            if key != "epoch":
                self.live.log_metric(key, value)
        self.live.next_step()

    def end(self) -> None:
        self.live.end()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, config_key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of a damaged file vary
        raise ck.CheckpointError(
            path, f"unreadable resume state ({exc}); move it away to train from scratch"
        ) from None
    if state.get("config_key") != config_key:
        stale = path.with_name(f"state.stale-{str(state.get('config_key'))[:12]}.pt")
        os.replace(path, stale)
        log.warning("%s was written under another training config: kept as %s", path, stale)
        return None
    return state


def train_student(
    student: Student,
    settings: TrainSettings,
    train: Sequence[Sample],
    val: Sequence[Sample],
    out_dir: Path,
    resolved: dict[str, Any],
    gt_reader: Callable[[Path], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write the checkpoint folder ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    work = ck.work_dir(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    config = {
        **resolved,
        "options": student.options,  # predict rebuilds the model from these
        "settings": asdict(settings),
        "student": student.name,
    }
    config_key = content_key(config)
    device = settings.device

    def loader(samples: Sequence[Sample], order: list[int] | None) -> Any:
        dataset = ClipDataset(
            samples, student.image_size, student.mean, student.std, student.audio_dim, gt_reader
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=settings.batch_size,
            sampler=order,
            collate_fn=collate,
            num_workers=settings.num_workers,
            drop_last=False,
        )

    seed_everything(settings.seed)
    model = student.build().to(device)
    optimizer = student.optimizer(model.parameters(), settings.lr)
    history: list[dict[str, Any]] = []
    state_path = work / STATE
    state = _load_state(state_path, config_key)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        start = int(state["epoch"])
        log.info("resuming %s from epoch %d/%d (%s)", out_dir, start, settings.epochs, state_path)
    atomic_write_json(work / ck.CONFIG, config)
    live = _Live(work / ck.DVCLIVE, history)
    val_loader = loader(val, None) if val else None
    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    model.train()
    for epoch in range(start, settings.epochs):
        sums: dict[str, float] = {}
        n_batches = n_samples = 0
        data_s = step_s = 0.0
        student.on_epoch_start(model, epoch)
        for group in optimizer.param_groups:  # a pure function of the epoch: resumes exactly
            group["lr"] = student.lr_at(epoch, settings.epochs, settings.lr)
        tick = time.perf_counter()
        for step, batch in enumerate(loader(train, epoch_order(len(train), settings.seed, epoch))):
            loaded = time.perf_counter()
            data_s += loaded - tick
            batch = batch.to(device)
            output = student.forward(model, batch)
            loss, parts = student.loss(output, batch)
            if not torch.isfinite(loss):
                kept = f"the state of epoch {start if not history else history[-1]['epoch']}"
                raise TrainingDivergedError(
                    f"{out_dir}: training diverged: loss is {float(loss.detach())} at epoch {epoch + 1} "
                    f"step {step + 1}; {kept} is kept in {state_path} (lower the learning rate "
                    "or check the inputs)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            n_batches += 1
            n_samples += int(batch.frames.shape[0])
            tick = time.perf_counter()
            step_s += tick - loaded
        entry: dict[str, Any] = {"epoch": epoch + 1}
        entry.update({f"train/{k}": v / max(n_batches, 1) for k, v in sums.items()})
        if val_loader is not None:
            entry["val/miou"] = evaluate(student, model, val_loader, device)
        history.append(entry)
        _save_state(
            state_path,
            {
                "config_key": config_key,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(),
                "history": history,
            },
        )
        live.log(entry)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch")
        log.info(
            "epoch %d/%d: %s; %.3g clips/s (input pipeline %.3g clips/s, step %.3g clips/s)",
            epoch + 1,
            settings.epochs,
            shown,
            n_samples / max(data_s + step_s, 1e-9),
            n_samples / max(data_s, 1e-9),
            n_samples / max(step_s, 1e-9),
        )
        if kill_after and epoch + 1 == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    live.end()
    return _finish(student, model, config, history, work, out_dir)


def _finish(
    student: Student,
    model: torch.nn.Module,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    work: Path,
    out_dir: Path,
) -> dict[str, Any]:
    from safetensors.torch import save_file

    with atomic_dir(out_dir) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / ck.WEIGHTS), metadata={"student": student.name})
        shutil.copyfile(work / STATE, tmp / ck.STATE)
        atomic_write_json(tmp / ck.CONFIG, config)
        atomic_write_json(tmp / ck.METRICS, history)
        shutil.copytree(work / ck.DVCLIVE, tmp / ck.DVCLIVE)
        summary = {
            "student": student.name,
            "identity": student.identity(),
            "epochs": len(history),
            "weights_sha256": sha256_file(tmp / ck.WEIGHTS),
            "final": history[-1] if history else {},
        }
        atomic_write_json(tmp / ck.SUMMARY, summary)
    shutil.rmtree(work, ignore_errors=True)
    return summary
