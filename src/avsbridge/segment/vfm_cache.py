"""Content-addressed caches of the two reusable VFM results: detections and image embeddings.

The vision stage's cost is the detector (GroundingDINO, or the demo's template matcher)
and the image encoder (SAM / SAM2 ViT). Neither depends on the box threshold, and the
encoder does not depend on the prompt, yet every segment job (variant x threshold x
shard) used to run both again on the same frames. These caches make each pass happen
once per content:

- **detections** ``{root}/detections/{key[:2]}/{key}.json``: every candidate the
  detector returns for (frame pixels, detector query, detector identity), BEFORE any
  box/text threshold (a backend may store only candidates scoring >= a floor; the
  floor is part of the key). A threshold sweep filters cached candidates; two
  strategies that produce the same prompt share the entry.
- **embeddings** ``{root}/embeddings/{key[:2]}/{key}.emb``: the image encoder's
  features for (frame pixels, encoder identity, storage dtype), in a small binary
  format (JSON header + raw arrays) so fp16/bf16 features cost 2 bytes a value. A size
  budget with FIFO or LRU eviction bounds the folder (ViT-H: 2 MiB a frame in fp16).

Same rules as the LLM call cache (:mod:`avsbridge.translate.cache`): the key is the
sha256 of the canonical JSON of everything that shapes the result; an entry is written
to a temp file beside its place and hard-linked into place, so the first writer wins
and every concurrent job adopts the stored value. Every entry carries the sha256 of its
payload: an entry that does not parse or whose payload hash differs is corrupt, is
never used, and is recomputed and replaced (``os.replace``: a reader sees the old or
the new file, never half of one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.io import canonical_json, content_key

CACHE_FORMAT = 1
TEMP_SUFFIX = ".tmp"
LOCKS = "locks"  # beside the entry folders, never DVC-tracked
LOCK_STRIPES = 4096  # keys -> lock files: two jobs rarely wait on each other's frames
DETECTIONS = "detections"
EMBEDDINGS = "embeddings"
KINDS = (DETECTIONS, EMBEDDINGS)
EMB_MAGIC = b"AVSEMB1\n"
EVICTION_POLICIES = ("fifo", "lru")
# storage dtypes of embeddings: "same" keeps the encoder's dtype (lossless)
STORAGE_DTYPES = ("same", "float32", "float16", "bfloat16")


def frame_sha256(image: np.ndarray) -> str:
    """Hash of the decoded pixels (shape + bytes): what the models see, whatever the file."""
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def detection_key(frame: str, query: str, detector: dict[str, Any]) -> str:
    return content_key({"kind": DETECTIONS, "frame": frame, "query": query, "detector": detector})


def embedding_key(frame: str, encoder: dict[str, Any], storage_dtype: str) -> str:
    return content_key(
        {"kind": EMBEDDINGS, "frame": frame, "encoder": encoder, "storage": storage_dtype}
    )


@dataclass
class CacheCounts:
    """Hits and misses of one cache during one job (run-dependent: a job's summary only)."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # entries found corrupt, recomputed and replaced
    stored: int = 0
    evicted: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "corrupt": self.corrupt,
            "stored": self.stored,
            "evicted": self.evicted,
        }


class CorruptEntry(Exception):
    """An entry file that does not parse or whose payload hash differs."""


def _publish(path: Path, data: bytes) -> bool:
    """Write ``data`` at ``path`` unless it exists (True: ours is the entry now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:  # a filesystem without hard links: last writer wins
            if exc.errno not in {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}:
                raise
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _replace(path: Path, data: bytes) -> None:
    """Overwrite a corrupt entry atomically (readers see the old or the new file)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------- entry codecs


def encode_detection_entry(key: str, request: dict[str, Any], raw: Any) -> bytes:
    entry = {
        "format": CACHE_FORMAT,
        "key": key,
        "request": request,
        "raw": raw,
        "raw_sha256": content_key(raw),
    }
    return (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()


def decode_detection_entry(data: bytes, key: str) -> Any:
    try:
        entry = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptEntry(f"not JSON ({exc})") from None
    if not isinstance(entry, dict) or entry.get("key") != key or "raw" not in entry:
        raise CorruptEntry("not a detections entry of this key")
    if content_key(entry["raw"]) != entry.get("raw_sha256"):
        raise CorruptEntry("payload sha256 differs from the recorded one")
    return entry["raw"]


def encode_embedding_entry(
    key: str, request: dict[str, Any], arrays: dict[str, tuple[str, np.ndarray]]
) -> bytes:
    """Header (JSON: key, request, arrays' dtype labels/shapes, payload sha256) + raw bytes."""
    specs, chunks = [], []
    for name, (label, array) in arrays.items():
        raw = np.ascontiguousarray(array).tobytes()
        specs.append(
            {"name": name, "dtype": label, "np": array.dtype.str, "shape": list(array.shape)}
        )
        chunks.append(raw)
        specs[-1]["nbytes"] = len(raw)
    payload = b"".join(chunks)
    header = canonical_json(
        {
            "format": CACHE_FORMAT,
            "key": key,
            "request": request,
            "arrays": specs,
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
    ).encode()
    return EMB_MAGIC + struct.pack("<Q", len(header)) + header + payload


def decode_embedding_entry(data: bytes, key: str) -> dict[str, tuple[str, np.ndarray]]:
    start = len(EMB_MAGIC) + 8
    if len(data) < start or not data.startswith(EMB_MAGIC):
        raise CorruptEntry("not an embedding entry (bad magic)")
    (header_len,) = struct.unpack("<Q", data[len(EMB_MAGIC) : start])
    try:
        header = json.loads(data[start : start + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptEntry(f"unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("key") != key:
        raise CorruptEntry("header holds another key")
    payload = data[start + header_len :]
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CorruptEntry("payload sha256 differs from the recorded one")
    arrays: dict[str, tuple[str, np.ndarray]] = {}
    offset = 0
    try:
        for spec in header["arrays"]:
            raw = payload[offset : offset + int(spec["nbytes"])]
            offset += int(spec["nbytes"])
            array = np.frombuffer(raw, dtype=np.dtype(spec["np"])).reshape(spec["shape"])
            arrays[str(spec["name"])] = (str(spec["dtype"]), array.copy())
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntry(f"array table does not match the payload ({exc})") from None
    return arrays


# --------------------------------------------------------------------------- the store


@dataclass
class EntryStore:
    """One kind of entry in ``root/<kind>``: read verified, publish first-writer-wins."""

    root: Path
    kind: str
    suffix: str
    decode: Callable[[bytes, str], Any]
    counts: CacheCounts = field(default_factory=CacheCounts)
    touch_on_hit: bool = False  # LRU: a hit refreshes the entry's mtime

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.root / self.kind

    def entry_path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{self.suffix}"

    def _read(self, key: str) -> tuple[bool, Any]:
        """(found, value); a corrupt entry counts and reads as absent."""
        path = self.entry_path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # absent, or evicted by a concurrent prune
            return False, None
        try:
            return True, self.decode(data, key)
        except CorruptEntry:
            return False, _CORRUPT

    def lookup(self, key: str) -> tuple[bool, Any]:
        """(hit, value): a verified entry, else a miss (corrupt entries are misses)."""
        found, value = self._read(key)
        with self._lock:
            if found:
                self.counts.hits += 1
            else:
                self.counts.misses += 1
                if value is _CORRUPT:
                    self.counts.corrupt += 1
        if found and self.touch_on_hit:
            with contextlib.suppress(OSError):
                os.utime(self.entry_path(key))
        return found, value

    def store(self, key: str, data: bytes) -> Any:
        """Publish ``data``; returns the value the cache holds for ``key`` afterwards.

        A concurrent writer that got there first wins (its value is returned); a
        corrupt file in the way is replaced.
        """
        path = self.entry_path(key)
        if _publish(path, data):
            with self._lock:
                self.counts.stored += 1
            return self.decode(data, key)
        found, value = self._read(key)
        if found:
            return value
        _replace(path, data)  # the existing file is corrupt (or vanished): ours replaces it
        with self._lock:
            self.counts.stored += 1
        return self.decode(data, key)

    def recheck(self, key: str) -> tuple[bool, Any]:
        """A miss looked up again after :meth:`claim`: found now = another job computed it."""
        found, value = self._read(key)
        if found:
            with self._lock:
                self.counts.misses -= 1
                self.counts.hits += 1
        return found, value

    @contextlib.contextmanager
    def claim(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the lock stripes of ``keys`` while computing them.

        Concurrent jobs that miss the same entries (the 7 threshold jobs of a shard
        started together) then wait for the first one and read its entries instead of
        running the detector or encoder again. Stripes are taken in sorted order (no
        deadlock); where the filesystem has no ``flock`` (some network filesystems)
        the claim is a no-op and a race only costs a duplicate computation.
        """
        stripes = sorted({int(key[:3], 16) % LOCK_STRIPES for key in keys})
        handles = []
        try:
            folder = self.root / LOCKS / self.kind
            folder.mkdir(parents=True, exist_ok=True)
            for stripe in stripes:
                fh = open(folder / f"{stripe:03x}.lock", "a+b")  # noqa: SIM115 - held across yield
                handles.append(fh)
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass  # no locking here: still correct (first writer wins), maybe duplicate work
        try:
            yield
        finally:
            for fh in handles:
                with contextlib.suppress(OSError):
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                fh.close()

    def entries(self) -> list[tuple[Path, os.stat_result]]:
        """Published entries (temp files of live writers skipped) with their stat."""
        found = []
        if not self.folder.is_dir():
            return found
        for path in self.folder.glob(f"*/*{self.suffix}"):
            if path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                found.append((path, path.stat()))
        return found

    def prune(self, budget_bytes: int) -> int:
        """Delete oldest entries (by mtime: creation for FIFO, last hit for LRU) over budget."""
        items = self.entries()
        total = sum(st.st_size for _, st in items)
        removed = 0
        for path, st in sorted(items, key=lambda item: (item[1].st_mtime_ns, item[0].name)):
            if total <= budget_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            total -= st.st_size
        with self._lock:
            self.counts.evicted += removed
        return removed


_CORRUPT = object()


@dataclass(frozen=True)
class VfmCacheSettings:
    """Where the caches live and what the user allows them (config ``vfm_cache``)."""

    root: Path
    detections: bool = True
    embeddings: bool = True
    embedding_budget_gb: float = 50.0
    eviction: str = "fifo"
    embedding_dtype: str = "same"

    def __post_init__(self) -> None:
        if self.eviction not in EVICTION_POLICIES:
            raise ValueError(
                f"vfm_cache.eviction must be one of {', '.join(EVICTION_POLICIES)}, "
                f"got {self.eviction!r}"
            )
        if self.embedding_dtype not in STORAGE_DTYPES:
            raise ValueError(
                f"vfm_cache.embedding_dtype must be one of {', '.join(STORAGE_DTYPES)}, "
                f"got {self.embedding_dtype!r}"
            )
        if float(self.embedding_budget_gb) < 0:
            raise ValueError(
                f"vfm_cache.embedding_budget_gb must be >= 0, got {self.embedding_budget_gb}"
            )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VfmCacheSettings:
        from avsbridge import paths

        spec = dict(config.get("vfm_cache") or {})
        spec.pop("dir", None)
        return cls(root=Path(paths.vfm_cache_dir(config)), **spec)

    @property
    def budget_bytes(self) -> int:
        return int(float(self.embedding_budget_gb) * 1e9)


class VfmCaches:
    """The two stores of one job, with the settings that say which are on."""

    def __init__(self, settings: VfmCacheSettings | None) -> None:
        self.settings = settings
        root = settings.root if settings is not None else Path(".")
        self.detections = EntryStore(root, DETECTIONS, ".json", decode_detection_entry)
        self.embeddings = EntryStore(
            root,
            EMBEDDINGS,
            ".emb",
            decode_embedding_entry,
            touch_on_hit=settings is not None and settings.eviction == "lru",
        )

    @property
    def detections_on(self) -> bool:
        return self.settings is not None and self.settings.detections

    @property
    def embeddings_on(self) -> bool:
        return (
            self.settings is not None
            and self.settings.embeddings
            and self.settings.embedding_budget_gb > 0
        )

    @property
    def storage_dtype(self) -> str:
        return self.settings.embedding_dtype if self.settings is not None else "same"

    def enforce_budget(self) -> None:
        if self.embeddings_on:
            assert self.settings is not None
            self.embeddings.prune(self.settings.budget_bytes)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            DETECTIONS: self.detections.counts.to_json(),
            EMBEDDINGS: self.embeddings.counts.to_json(),
        }


def folder_stats(root: Path) -> dict[str, Any]:
    """Entries and bytes of each cache under ``root``, per model identity (for ``cache stats``)."""
    root = Path(root)
    stats: dict[str, Any] = {"cache_dir": str(root)}
    for kind, suffix in ((DETECTIONS, ".json"), (EMBEDDINGS, ".emb")):
        store = EntryStore(root, kind, suffix, lambda data, key: data)
        items = store.entries()
        by_model: dict[str, dict[str, int]] = {}
        for path, st in items:
            label = _model_label(path, kind)
            slot = by_model.setdefault(label, {"entries": 0, "bytes": 0})
            slot["entries"] += 1
            slot["bytes"] += st.st_size
        temp = (
            sum(1 for _ in store.folder.glob(f"*/.*{TEMP_SUFFIX}")) if store.folder.is_dir() else 0
        )
        stats[kind] = {
            "entries": len(items),
            "bytes": sum(st.st_size for _, st in items),
            "by_model": by_model,
            "temp_files": temp,
        }
    return stats


def _model_label(path: Path, kind: str) -> str:
    """``backend`` + model of an entry's request (reads only the header of an embedding)."""
    try:
        with path.open("rb") as fh:
            if kind == EMBEDDINGS:
                head = fh.read(len(EMB_MAGIC) + 8)
                (length,) = struct.unpack("<Q", head[len(EMB_MAGIC) :])
                request = json.loads(fh.read(length))["request"]
                ident = request.get("encoder", {})
            else:
                request = json.loads(fh.read())["request"]
                ident = request.get("detector", {})
    except (OSError, ValueError, KeyError, struct.error):
        return "corrupt"
    return str(ident.get("model") or ident.get("backend") or "?")
