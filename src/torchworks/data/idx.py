"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the values in C order, big-endian. Reference: http://yann.lecun.com/exdb/mnist/ (bottom).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from torchworks.core.errors import DataError

__all__ = ["read_idx"]

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file (``.gz`` is decompressed) into a writable native-endian array.

    Args:
        path: file to read; gzip-compressed when its name ends in ``.gz``.

    Returns:
        Array with the file's dimensions and dtype (uint8 for images and labels).

    Raises:
        DataError: unreadable gzip, wrong magic number, or a payload size that does not match the header;
            the message names the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{path} is not a valid gzip file ({exc}); delete it and fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
        raise DataError(f"{path} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'}")
    dtype, ndim = _DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, header alone needs {header}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != count * dtype.itemsize:
        raise DataError(
            f"{path} is corrupt: header says shape {dims} ({count * dtype.itemsize} bytes of {dtype}), "
            f"payload has {len(data) - header} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    # frombuffer views the immutable bytes; torch.from_numpy warns on read-only arrays, so copy out.
    return arr.astype(dtype.newbyteorder("="), copy=True)
