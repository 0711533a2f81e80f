"""Statistics files from Python, written from docs/statistics.md alone (not from qreport's code): the
digest's canonical encoding, so that the tests can check qreport's digest independently and sign a file
they edited on purpose (to reach the semantic checks behind the digest)."""
import hashlib
import struct

import torch

DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.int32: "int32", torch.int64: "int64",
          torch.uint8: "uint8", torch.bool: "bool"}


def _u64(n):
    return struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF)


def _bytes(b):
    return _u64(len(b)) + b


def encode(v, root=False):
    """The canonical encoding of one value of torch.load's dict (docs/statistics.md, "Digest")."""
    if isinstance(v, dict):
        items = sorted((k.encode(), x) for k, x in v.items() if not (root and k == "digest"))
        return b"D" + _u64(len(items)) + b"".join(_bytes(k) + encode(x) for k, x in items)
    if isinstance(v, (list, tuple)):
        return b"L" + _u64(len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, str):
        return b"S" + _bytes(v.encode())
    if isinstance(v, bool):
        return b"B" + bytes([1 if v else 0])
    if isinstance(v, int):
        return b"I" + _u64(v)
    if isinstance(v, float):
        return b"F" + struct.pack("<d", v)
    if v is None:
        return b"N"
    if torch.is_tensor(v):
        name = DTYPES[v.dtype]
        data = bytes(v.contiguous().reshape(-1).view(torch.uint8).tolist())  # raw bytes, NaN payloads too
        return b"T" + _bytes(name.encode()) + _u64(v.dim()) + b"".join(_u64(d) for d in v.shape) + _bytes(data)
    raise TypeError(f"no statistics file holds a {type(v).__name__}")


def digest(d):
    return "sha256:" + hashlib.sha256(encode(d, root=True)).hexdigest()


def load(path):
    return torch.load(path, weights_only=False)  # TorchScript pickle type tags (2.6+ defaults to weights_only=True)


def save_signed(d, path):
    """Writes d with a digest that matches it: a deliberate edit that only the semantic checks can refuse."""
    d = dict(d)
    d["digest"] = digest(d)
    torch.save(d, path)
