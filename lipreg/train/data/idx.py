"""A strict reader of IDX files, the format of MNIST and Fashion-MNIST: :func:`read_idx`.

An IDX file is a header and the values of one array, row-major, big-endian:

- bytes 0-1: zero; byte 2: the type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
  ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64); byte 3: the number of dimensions
  ``d >= 1``;
- ``d`` big-endian uint32 sizes;
- ``prod(sizes) * itemsize`` bytes of values.

Files may be gzipped (recognised by their content, not their name). Everything is checked
before a value is trusted: the file is read in chunks and refused once it exceeds
``max_bytes`` (so a gzip bomb or a foreign file costs at most that much memory), then the
header's magic number, type code and sizes are checked against the bytes actually present.
A header that claims more values than the file holds (2**31 images, say) is refused without
allocating anything for them, and so are trailing bytes. Every refusal is an
:class:`IdxError` (a ``ValueError``) of one line naming the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IDX_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
"""IDX type codes and the NumPy dtypes (big-endian) of their values."""

MAX_BYTES = 1 << 30
"""The default bound on a file's (decompressed) size, 1 GiB."""

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """A file is not a well-formed IDX file (truncated, foreign, damaged or too large)."""


def read_idx_bytes(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The (decompressed, if gzipped) content of ``path``, at most ``max_bytes`` long.

    Raises :class:`IdxError` when the content exceeds ``max_bytes`` (memory use stays below
    it) or the gzip stream is damaged, ``OSError`` when the file cannot be read.
    """
    with path.open("rb") as raw:
        zipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        out = bytearray()
        try:
            with gzip.GzipFile(fileobj=raw) if zipped else raw as f:
                while chunk := f.read(min(_CHUNK, max_bytes + 1 - len(out))):
                    out += chunk
                    if len(out) > max_bytes:
                        raise IdxError(
                            f"{path} holds more than {max_bytes} bytes"
                            + (" once decompressed" if zipped else "")
                            + f", more than any IDX file expected here; {_HINT}"
                        )
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise IdxError(f"{path} is a damaged gzip file ({err}); {_HINT}") from None
    return bytes(out)


def parse_idx(data: bytes, name: str = "IDX data") -> Tensor:
    """The array held by the IDX bytes ``data``: a tensor of the header's shape and type.

    Types map to torch's ``uint8``, ``int8``, ``int16``, ``int32``, ``float32``,
    ``float64`` (values converted from big-endian). ``name`` names the source in errors.
    Raises :class:`IdxError` unless ``data`` is exactly one well-formed IDX array.
    """
    if len(data) < 4:
        raise IdxError(f"{name} is truncated: {len(data)} bytes, shorter than an IDX header")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_TYPES or ndim == 0:
        raise IdxError(
            f"{name} is not an IDX file: its magic number is 0x{data[:4].hex()}, not "
            f"0x0000TTDD with a type TT in {{{', '.join(f'{c:02x}' for c in IDX_TYPES)}}} and "
            f"DD >= 1 dimensions; {_HINT}"
        )
    start = 4 + 4 * ndim
    if len(data) < start:
        raise IdxError(
            f"{name} is truncated: its header declares {ndim} dimensions ({start} bytes), "
            f"but the file holds {len(data)} bytes"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[code])
    # Python integers: a product of uint32 sizes cannot overflow before it is compared.
    declared = math.prod(shape) * dtype.itemsize
    present = len(data) - start
    if declared != present:
        what = "truncated" if declared > present else "followed by stray bytes"
        raise IdxError(
            f"{name} is {what}: its header declares an array of shape {list(shape)} "
            f"({declared} bytes of {dtype.name}), but {present} bytes follow it; {_HINT}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=start).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def read_idx(path: str | Path, max_bytes: int = MAX_BYTES) -> Tensor:
    """The array of the IDX file at ``path`` (gzipped or not): :func:`parse_idx` of
    :func:`read_idx_bytes`."""
    path = Path(path)
    return parse_idx(read_idx_bytes(path, max_bytes), str(path))


_HINT = "replace it with the original file"
