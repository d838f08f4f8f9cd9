"""Read every frame, mask and wav of a dataset once, in parallel, and list every problem.

At AVSBench scale a bad GT found by the evaluate job after hours of GPU work is
the failure this prevents: :func:`check_dataset` runs before a paper run's
first model (and as ``avsbridge data check``). Unlike the loaders'
``validate=True``, which stops at the first bad file, it keeps going and
reports every problem at once, one line each naming the file, the clip and the
frame: unreadable or missing files, masks whose size differs from their frame,
frames of one clip with different sizes, audio shorter than the frames, and
wavs whose sample rate or channel count differs from what the dataset expects
(the ``--sample-rate`` / ``--channels`` given, else the most common value).

What the audio stage will do to the audio, resampling to the ALM's rate and
down-mixing to mono, is announced once per dataset in ``notices``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_write_json, read_image, read_wav_channels


@dataclass(frozen=True)
class Problem:
    """One bad file; ``str()`` is the one line the CLI prints."""

    path: str
    problem: str
    clip: str | None = None
    frame: int | None = None  # 1-based, as in the file names

    def __str__(self) -> str:
        where = []
        if self.clip is not None:
            where.append(f"clip {self.clip}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        located = f" ({', '.join(where)})" if where else ""
        return f"{self.path}{located}: {self.problem}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "clip": self.clip, "frame": self.frame, "problem": self.problem}


@dataclass
class ClipFacts:
    """What reading one clip found: its problems and its audio format."""

    clip: Clip
    problems: list[Problem] = field(default_factory=list)
    rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    frames_read: int = 0
    masks_read: int = 0


@dataclass
class DatasetReport:
    """Every problem of one dataset, plus counts and the once-per-dataset audio notices."""

    dataset: str
    root: str
    n_clips: int = 0
    n_frames: int = 0
    n_masks: int = 0
    n_wavs: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem (what the CLI prints, and what an exception carries)."""
        return [str(p) for p in self.problems]

    def summary(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"{self.dataset} ({self.root}): {self.n_clips} clips, {self.n_frames} frames, "
            f"{self.n_masks} masks, {self.n_wavs} wavs read: {state}"
        )

    def render(self) -> str:
        notes = [f"note: {self.dataset}: {n}" for n in self.notices]
        return "\n".join([*self.lines(), *notes, self.summary()])

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "ok": self.ok,
            "counts": {
                "clips": self.n_clips,
                "frames": self.n_frames,
                "masks": self.n_masks,
                "wavs": self.n_wavs,
            },
            "problems": [p.to_json() for p in self.problems],
            "notices": list(self.notices),
        }


class DatasetCheckError(ValueError):
    """A dataset has bad media; the message lists every problem, one per line."""

    def __init__(self, reports: Sequence[DatasetReport]) -> None:
        self.reports = list(reports)
        lines = [line for r in self.reports for line in r.lines()]
        super().__init__(
            f"{len(lines)} problem(s) in the dataset media "
            f"(run `avsbridge data check` for the same list):\n  " + "\n  ".join(lines)
        )


# --------------------------------------------------------------------------- one clip


def _image_size(
    path: Path, facts: ClipFacts, frame: int, reader: Callable[[Path], np.ndarray]
) -> tuple[int, int] | None:
    try:
        arr = reader(path)
    except ArtifactError as exc:
        facts.problems.append(Problem(str(path), exc.problem, facts.clip.id, frame))
        return None
    return int(arr.shape[1]), int(arr.shape[0])


def check_clip(clip: Clip, palette: np.ndarray | None = None) -> ClipFacts:
    """Read every file of one clip once; collect problems instead of stopping at the first."""
    from avsbridge.data.avsbench import read_avss_label

    facts = ClipFacts(clip)
    sizes: list[tuple[int, int] | None] = []
    for k, frame in enumerate(clip.frames, start=1):
        size = _image_size(Path(frame), facts, k, lambda p: read_image(p, mode="RGB"))
        facts.frames_read += 1
        sizes.append(size)
    first = next(((k, s) for k, s in enumerate(sizes, start=1) if s is not None), None)
    if first is not None:
        for k, size in enumerate(sizes, start=1):
            if size is not None and size != first[1]:
                facts.problems.append(
                    Problem(
                        str(clip.frames[k - 1]),
                        f"frame size {size[0]}x{size[1]} differs from frame {first[0]}'s "
                        f"{first[1][0]}x{first[1][1]}",
                        clip.id,
                        k,
                    )
                )
    if palette is not None:
        mask_reader: Callable[[Path], np.ndarray] = lambda p: read_avss_label(p, palette)  # noqa: E731
    else:
        mask_reader = lambda p: read_image(p, mode="L")  # noqa: E731
    for k, (mask, size) in enumerate(zip(clip.masks, sizes, strict=True), start=1):
        if mask is None:
            continue
        mask_size = _image_size(Path(mask), facts, k, mask_reader)
        facts.masks_read += 1
        if mask_size is not None and size is not None and mask_size != size:
            facts.problems.append(
                Problem(
                    str(mask),
                    f"mask size {mask_size[0]}x{mask_size[1]} differs from frame size "
                    f"{size[0]}x{size[1]} of {clip.frames[k - 1]}",
                    clip.id,
                    k,
                )
            )
    if clip.audio is not None:
        try:
            samples, rate, channels = read_wav_channels(clip.audio)
        except ArtifactError as exc:
            facts.problems.append(Problem(str(clip.audio), exc.problem, clip.id))
        else:
            facts.rate, facts.channels = rate, channels
            facts.duration_s = len(samples) / rate
            if samples.size == 0:
                facts.problems.append(Problem(str(clip.audio), "wav holds no samples", clip.id))
            elif not np.all(np.isfinite(samples)):
                facts.problems.append(
                    Problem(str(clip.audio), "wav holds non-finite samples", clip.id)
                )
    return facts


# --------------------------------------------------------------------------- a dataset


def _most_common(values: Sequence[int]) -> int | None:
    return collections.Counter(values).most_common(1)[0][0] if values else None


def _audio_problems(
    facts: Sequence[ClipFacts],
    sample_rate: int | None,
    channels: int | None,
    short_tolerance_s: float,
) -> tuple[list[Problem], int | None, int | None]:
    """Short audio and rate/channel outliers; expected values given or the dataset's mode."""
    rates = [f.rate for f in facts if f.rate is not None]
    chans = [f.channels for f in facts if f.channels is not None]
    want_rate = sample_rate or _most_common(rates)
    want_channels = channels or _most_common(chans)
    rate_why = (
        "expected"
        if sample_rate
        else f"the dataset's usual ({rates.count(want_rate)} of {len(rates)} wavs)"
    )
    chan_why = (
        "expected"
        if channels
        else f"the dataset's usual ({chans.count(want_channels)} of {len(chans)} wavs)"
    )
    problems: list[Problem] = []
    for f in facts:
        clip, wav = f.clip, str(f.clip.audio)
        if f.rate is None or f.duration_s is None:
            continue
        if want_rate is not None and f.rate != want_rate:
            problems.append(
                Problem(wav, f"sample rate {f.rate} Hz, not {want_rate} Hz ({rate_why})", clip.id)
            )
        if want_channels is not None and f.channels != want_channels:
            problems.append(
                Problem(wav, f"{f.channels} channel(s), not {want_channels} ({chan_why})", clip.id)
            )
        needed = clip.n_frames / clip.fps
        if f.duration_s + short_tolerance_s < needed and f.duration_s > 0:
            problems.append(
                Problem(
                    wav,
                    f"audio is {f.duration_s:.3f} s, shorter than its {clip.n_frames} frames "
                    f"at {clip.fps:g} fps ({needed:g} s)",
                    clip.id,
                )
            )
    return problems, want_rate, want_channels


def _notices(facts: Sequence[ClipFacts], target_rate: int | None, target_name: str) -> list[str]:
    """What the audio stage will do to this dataset's audio: said once, never per clip."""
    rates = collections.Counter(f.rate for f in facts if f.rate is not None)
    chans = collections.Counter(f.channels for f in facts if f.channels is not None)
    notices: list[str] = []
    if target_rate:
        resampled = {r: n for r, n in sorted(rates.items()) if r != target_rate}
        if resampled:
            what = ", ".join(f"{n} at {r} Hz" for r, n in resampled.items())
            notices.append(
                f"audio resampled to {target_rate} Hz for {target_name}: {what} "
                f"(of {sum(rates.values())} wavs)"
            )
    multi = sum(n for c, n in chans.items() if c > 1)
    if multi:
        counts = ", ".join(f"{n} with {c} channels" for c, n in sorted(chans.items()) if c > 1)
        notices.append(f"audio down-mixed to mono (mean of channels): {counts}")
    return notices


def check_clips(
    clips: Sequence[Clip],
    dataset: str,
    root: str,
    palette: np.ndarray | None = None,
    workers: int | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    target_rate: int | None = None,
    target_name: str = "the audio model",
    short_tolerance_s: float = 0.0,
) -> DatasetReport:
    """Check clips in a thread pool (image decoding and wav reading release the GIL)."""
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        facts = list(pool.map(lambda c: check_clip(c, palette), clips))
    report = DatasetReport(dataset=dataset, root=root, n_clips=len(clips))
    for f in facts:
        report.problems.extend(f.problems)
        report.n_frames += f.frames_read
        report.n_masks += f.masks_read
        report.n_wavs += int(f.clip.audio is not None)
    audio_problems, _rate, _channels = _audio_problems(
        facts, sample_rate, channels, short_tolerance_s
    )
    report.problems.extend(audio_problems)
    report.notices = _notices(facts, target_rate, target_name)
    return report


def _spec_clips(spec: Mapping[str, Any]) -> tuple[list[Clip], np.ndarray | None]:
    from avsbridge.data.avsbench import avss_root_palette, load_benchmark, read_weak_labels

    kind, root = str(spec["kind"]), Path(spec["root"])
    clips = load_benchmark(kind, root, split=spec.get("split"))
    if spec.get("weak_labels"):
        read_weak_labels(Path(spec["weak_labels"]))  # a bad label file is a problem too
    if spec.get("limit"):
        clips = clips[: int(spec["limit"])]
    palette = avss_root_palette(root) if kind in ("avss", "v3") else None
    return clips, palette


def check_dataset(
    spec: Mapping[str, Any],
    name: str | None = None,
    workers: int | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    target_rate: int | None = None,
    target_name: str = "the audio model",
    short_tolerance_s: float = 0.0,
) -> DatasetReport:
    """Check one configured dataset (``config["datasets"][name]``: kind, root, split, ...).

    Never raises on bad media: every problem is in the report. A missing root or
    a bad metadata CSV is one problem naming the file (nothing else can be read).
    """
    name = name or str(spec.get("kind", "dataset"))
    root = str(spec.get("root", ""))
    report = DatasetReport(dataset=name, root=root)
    if not Path(root).is_dir():
        report.problems.append(
            Problem(root, f"dataset root is missing (config key datasets.{name}.root)")
        )
        return report
    from avsbridge.zeroshot.samples import KINDS as ZEROSHOT_KINDS

    if spec.get("kind") in ZEROSHOT_KINDS:
        return check_zeroshot(spec, name, report)
    try:
        clips, palette = _spec_clips(spec)
    except ArtifactError as exc:
        report.problems.append(Problem(str(exc.path), exc.problem))
        return report
    except ValueError as exc:
        report.problems.append(Problem(root, str(exc)))
        return report
    return check_clips(
        clips,
        name,
        root,
        palette=palette,
        workers=workers,
        sample_rate=sample_rate,
        channels=channels,
        target_rate=target_rate,
        target_name=target_name,
        short_tolerance_s=short_tolerance_s,
    )


def check_zeroshot(spec: Mapping[str, Any], name: str, report: DatasetReport) -> DatasetReport:
    """Zero-shot samples: every image (RGB), GT (8-bit grey, as zeroshot-baav reads it) and
    wav read once; each unreadable file is one problem naming it."""
    from avsbridge.io import read_wav
    from avsbridge.metrics.evaluate import read_grey_gt
    from avsbridge.zeroshot.samples import dataset_samples

    try:
        samples = dataset_samples({"datasets": {name: dict(spec)}}, name)
    except ArtifactError as exc:
        report.problems.append(Problem(str(exc.path), exc.problem))
        return report
    except (ValueError, OSError) as exc:
        report.problems.append(Problem(report.root, str(exc)))
        return report
    seen: set[Path] = set()
    readers = (("image", lambda p: read_image(p, mode="RGB")), ("gt", read_grey_gt))
    for sample in samples:
        for key, reader in (*readers, ("audio", read_wav)):
            path = Path(getattr(sample, key))
            if path in seen:
                continue
            seen.add(path)
            try:
                reader(path)
            except ArtifactError as exc:
                report.problems.append(Problem(str(exc.path), f"sample {sample.id}: {exc.problem}"))
                continue
            if key == "image":
                report.n_frames += 1
            elif key == "gt":
                report.n_masks += 1
            else:
                report.n_wavs += 1
    report.n_clips = len({s.group for s in samples})
    return report


def alm_target(config: Mapping[str, Any]) -> tuple[int | None, str]:
    """The sample rate the profile's ALM backend reads (for the resampling notice)."""
    from avsbridge.audio_text import AUDIO_TEXTERS

    backend = (config.get("backends") or {}).get("alm") or {}
    name = backend.get("name")
    if not name:
        return None, "the audio model"
    factory = AUDIO_TEXTERS.get(str(name)) if str(name) in AUDIO_TEXTERS else None
    rate = getattr(factory, "sample_rate", None)
    return (int(rate) if rate else None), f"ALM {name}"


def _anchored_spec(spec: Mapping[str, Any], base: Path | None) -> dict[str, Any]:
    """Relative ``root``/``weak_labels`` of a profile resolved against ``base`` (the workdir)."""
    out = dict(spec)
    if base is not None:
        for key in ("root", "weak_labels", "list"):
            if out.get(key) and not Path(str(out[key])).is_absolute():
                out[key] = str(Path(base) / str(out[key]))
    return out


def check_config_datasets(
    config: Mapping[str, Any],
    datasets: Sequence[str] | None = None,
    workers: int | None = None,
    base: Path | None = None,
) -> list[DatasetReport]:
    """:func:`check_dataset` for each dataset of a profile (all of them by default).

    ``base``: folder that relative dataset paths are relative to (the Snakemake
    workdir, i.e. the project root); None keeps them relative to the CWD.
    """
    target_rate, target_name = alm_target(config)
    names = list(datasets) if datasets else list(config["datasets"])
    unknown = [n for n in names if n not in config["datasets"]]
    if unknown:
        raise ValueError(
            f"unknown dataset(s) {', '.join(unknown)}; the profile has {', '.join(config['datasets'])}"
        )
    return [
        check_dataset(
            _anchored_spec(config["datasets"][n], base),
            name=n,
            workers=workers,
            target_rate=target_rate,
            target_name=target_name,
        )
        for n in names
    ]


def require_datasets_ok(
    config: Mapping[str, Any], datasets: Sequence[str] | None = None, workers: int | None = None
) -> list[DatasetReport]:
    """Check and raise :class:`DatasetCheckError` listing every problem; notices are returned."""
    reports = check_config_datasets(config, datasets, workers)
    if any(not r.ok for r in reports):
        raise DatasetCheckError(reports)
    return reports


def data_check_job(
    config: Mapping[str, Any], dataset: str, out_file: Path, workers: int | None = None
) -> DatasetReport:
    """A rule's one call: check a dataset and write its report JSON; bad media fails the job.

    Every problem goes to the job log, one line each, before the job fails.
    """
    import logging

    log = logging.getLogger("avsbridge.data.check")
    (report,) = check_config_datasets(config, [dataset], workers)
    for notice in report.notices:
        log.info("%s: %s", dataset, notice)
    for line in report.lines():
        log.error("%s", line)
    log.info("%s", report.summary())
    if not report.ok:
        raise DatasetCheckError([report])
    atomic_write_json(out_file, report.to_json())
    return report


def data_check_stage(ctx: Any) -> None:
    """The data_check rule's job (avsbridge.stages): one dataset, every file read once."""
    data_check_job(
        ctx.config, ctx.wildcards["dataset"], ctx.output, workers=ctx.params.get("workers")
    )
