"""The tensors of an ONNX file (initializers, Constant nodes' values) as numpy arrays, checked first.

onnx's numpy_helper.to_array trusts the file: data that do not fill the shape are a ValueError
deep inside numpy, and external data are read from the current folder, at any path the file names.
Here a tensor's data type, dimensions and data length are checked against each other before it is
converted, and external data are read from the model's own folder only: an absolute location, or
one that leaves the folder (through `..` or a link), is refused. Of a large external tensor
(over SMALL values) archcalc checks that its file holds the bytes but does not read them: the
import needs a weight's shape, never its values. Each problem is one SpecError naming the tensor.
"""
from __future__ import annotations

import math
import os
import stat
from typing import Any

import numpy as np

from .. import fmt
from ..errors import SpecError
from ..files import reason

SMALL = 4096  # values of a tensor the importer may read: pads, scales, shapes, the inputs of a folded node
ALL_DIMS = 2**62  # numpy's limit on the product of an array's dimensions (zeros counted as ones)


class Tensors:
    """Arrays of the tensors of one ONNX file, whose external data live in `folder`."""

    def __init__(self, onnx, folder: str):
        self.onnx, self.folder = onnx, os.path.realpath(folder)

    def array(self, tensor, what: str) -> np.ndarray:
        """The array of `tensor`; `what` names it in messages (`initializer w`)."""
        proto = self.onnx.TensorProto
        dims = [int(d) for d in tensor.dims]
        shape = fmt.shape(dims) if dims else "scalar"
        dtype = _dtype(self.onnx, tensor.data_type, what)
        if any(d < 0 for d in dims):
            raise SpecError(f"{what}: a negative dimension in its shape {dims}")
        if math.prod(max(d, 1) for d in dims) > ALL_DIMS:
            raise SpecError(f"{what}: its shape {shape} has more than 2**62 values")
        if tensor.HasField("segment"):
            raise SpecError(f"{what}: a tensor stored in segments, which archcalc does not read")
        count = math.prod(dims)
        name = proto.DataType.Name(tensor.data_type)
        if tensor.data_location == proto.EXTERNAL:
            return self._external(tensor, dtype, dims, count, what, f"{name}, shape {shape}")
        if tensor.data_type != proto.STRING and tensor.HasField("raw_data"):
            need = _raw_bytes(self.onnx, tensor.data_type, dtype, count)
            if len(tensor.raw_data) != need:
                raise SpecError(f"{what} ({name}, shape {shape}): raw_data holds {len(tensor.raw_data):,} bytes "
                                f"where its shape needs {need:,}")
        else:
            field = self.onnx.helper.tensor_dtype_to_field(tensor.data_type)
            need, held = _entries(self.onnx, tensor.data_type, count), len(getattr(tensor, field))
            if held != need:
                others = [f"{len(getattr(tensor, f)):,} in {f}" for f in _FIELDS if f != field and len(getattr(tensor, f))]
                also = f" (it has {', '.join(others)})" if others else ""
                raise SpecError(f"{what} ({name}, shape {shape}): {field} holds {held:,} values "
                                f"where its shape needs {need:,}{also}")
        return self._convert(tensor, what)

    def _convert(self, tensor, what: str) -> np.ndarray:
        try:
            return self.onnx.numpy_helper.to_array(tensor)
        except Exception as exc:  # what the checks above did not foresee: one line, not a traceback
            text = " ".join(str(exc).split())[:200]
            raise SpecError(f"{what}: its data cannot be read ({type(exc).__name__}: {text})") from None

    def _external(self, tensor, dtype, dims: list[int], count: int, what: str, kind: str) -> np.ndarray:
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        where = f"{what} ({kind}): external data {location!r}"
        need = _raw_bytes(self.onnx, tensor.data_type, dtype, count)
        try:
            offset, length = int(entries.get("offset", "0")), int(entries.get("length", str(need)))
        except ValueError:
            raise SpecError(f"{where}: offset {entries.get('offset')!r} or length {entries.get('length')!r} "
                            "is not a whole number") from None
        if offset < 0 or length != need:
            raise SpecError(f"{where}: {length:,} bytes at offset {offset:,} where its shape needs {need:,} bytes")
        path = self._inside(location, where)
        data = _read_range(path, offset, need, where, read=count <= SMALL)
        if data is None:  # a weight: its shape is what the import uses
            return np.broadcast_to(np.zeros((), dtype), dims)
        copy = self.onnx.TensorProto()
        copy.CopyFrom(tensor)
        del copy.external_data[:]
        copy.data_location = self.onnx.TensorProto.DEFAULT
        copy.raw_data = data
        return self._convert(copy, what)

    def _inside(self, location: str, where: str) -> str:
        """The external data file `location`, within the model's folder."""
        if not location or os.path.isabs(location) or "\0" in location:
            raise SpecError(f"{where}: archcalc reads external data only from a relative path in the model's folder")
        path = os.path.realpath(os.path.join(self.folder, location))
        if os.path.commonpath([path, self.folder]) != self.folder:
            raise SpecError(f"{where}: the path leads out of the model's folder {self.folder}; archcalc reads "
                            "external data only from there")
        return path


def _read_range(path: str, offset: int, size: int, where: str, read: bool) -> bytes | None:
    """`size` bytes at `offset` of the regular file `path` (None when `read` is false, once they are there)."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SpecError(f"{where}: cannot read it: {reason(exc)}") from None
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{where}: not a regular file; archcalc reads external data from files only")
        if info.st_size < offset + size:
            raise SpecError(f"{where}: the file has {info.st_size:,} bytes, fewer than the {offset + size:,} "
                            f"it needs ({size:,} at offset {offset:,})")
        if not read:
            return None
        try:
            stream.seek(offset)
            data = stream.read(size)
        except OSError as exc:
            raise SpecError(f"{where}: cannot read it: {reason(exc)}") from None
    if len(data) != size:  # it shrank while it was read
        raise SpecError(f"{where}: the file ends before its {size:,} bytes at offset {offset:,}")
    return data


_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
_PACKED = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2, "FLOAT6E2M3": 6, "FLOAT6E3M2": 6}
""" data types of fewer bits than a byte, by their bits: packed in raw_data (and 4 and 2 bits in int32_data)"""


def _dtype(onnx, data_type: int, what: str) -> Any:
    try:
        if data_type == onnx.TensorProto.UNDEFINED:
            raise KeyError(data_type)
        return onnx.helper.tensor_dtype_to_np_dtype(data_type)
    except (KeyError, ValueError):
        raise SpecError(f"{what}: data type {data_type} is not an ONNX tensor type archcalc reads") from None


def _bits(onnx, data_type: int) -> int | None:
    return _PACKED.get(onnx.TensorProto.DataType.Name(data_type))


def _raw_bytes(onnx, data_type: int, dtype, count: int) -> int:
    bits = _bits(onnx, data_type)
    return count * dtype.itemsize if bits is None else (count * bits + 7) // 8


def _entries(onnx, data_type: int, count: int) -> int:
    """Values of the typed field (float_data, int32_data, ...) that `count` values take."""
    proto = onnx.TensorProto
    if data_type in (proto.COMPLEX64, proto.COMPLEX128):
        return 2 * count
    bits = _bits(onnx, data_type)
    return count if bits is None or bits == 6 else (count * bits + 7) // 8  # a byte of packed values in each
