"""Flow files: Middlebury ``.flo`` (written and read here) and ``flowiz`` colour previews.

``.flo`` (Middlebury flow-code ``writeFlowFile``): little-endian float32 tag
202021.25 ("PIEH"), int32 width, int32 height, then height x width x (u, v)
float32, row-major. Ours is written atomically and read back with checks that
name the file; tests prove it round-trips through ``flowiz.read_flow``, the
ecosystem's reader. Previews use flowiz's Middlebury colour wheel (normalised by
the pair's largest motion, white = no motion).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from avsbridge.io import ArtifactError, atomic_write_bytes, write_png

FLO_TAG = 202021.25
_HEADER = 12
_MAX_SIDE = 100_000  # the Middlebury reader's sanity bound


def flo_bytes(flow: np.ndarray) -> bytes:
    """Encode an HxWx2 field as the bytes of a ``.flo`` file."""
    field = np.asarray(flow)
    if field.ndim != 3 or field.shape[2] != 2:
        raise ValueError(f"a .flo field is HxWx2, got {field.shape}")
    height, width = field.shape[:2]
    if not (0 < height < _MAX_SIDE and 0 < width < _MAX_SIDE):
        raise ValueError(f"a .flo field needs 0 < height, width < {_MAX_SIDE}, got {field.shape}")
    header = np.array([FLO_TAG], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    return header + np.ascontiguousarray(field, dtype="<f4").tobytes()


def write_flo(dest: os.PathLike[str] | str, flow: np.ndarray) -> None:
    """Write ``flow`` (HxWx2, u then v, pixels) as a Middlebury ``.flo`` file, atomically."""
    atomic_write_bytes(dest, flo_bytes(flow))


def read_flo(path: os.PathLike[str] | str) -> np.ndarray:
    """Read a ``.flo`` file as HxWx2 float32; a bad tag, size or length names the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(path, "flow file is missing") from None
    if len(data) < _HEADER:
        raise ArtifactError(path, f"truncated .flo header ({len(data)} bytes)")
    tag = float(np.frombuffer(data, "<f4", count=1)[0])
    if tag != FLO_TAG:
        raise ArtifactError(path, f"not a Middlebury .flo file (tag {tag!r}, want {FLO_TAG})")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", count=2, offset=4))
    if not (0 < width < _MAX_SIDE and 0 < height < _MAX_SIDE):
        raise ArtifactError(path, f"illegal .flo size {width}x{height}")
    expected = _HEADER + height * width * 2 * 4
    if len(data) != expected:
        raise ArtifactError(path, f"{len(data)} bytes, a {width}x{height} .flo file has {expected}")
    field = np.frombuffer(data, "<f4", offset=_HEADER).reshape(height, width, 2)
    return field.astype(np.float32)


def flow_colour(flow: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 Middlebury colour coding of ``flow``, rendered by flowiz."""
    import flowiz

    field = np.array(flow, dtype=np.float32, copy=True)  # flowiz edits its input in place
    return np.ascontiguousarray(flowiz.convert_from_flow(field), dtype=np.uint8)


def write_flow_preview(dest: os.PathLike[str] | str, flow: np.ndarray) -> None:
    write_png(dest, flow_colour(flow))
