"""Wire format of the Open Inference Protocol (KServe V2 REST), shared by server and client.

A V2 inference request is a JSON object::

    {"inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32",
                 "data": [0.0, 0.5, ...]}],            # row-major, flat or nested
     "outputs": [{"name": "predict_proba"}],             # optional: which outputs
     "parameters": {...}}                                # optional

and the response ``{"model_name": ..., "outputs": [{"name", "shape", "datatype",
"data"}], "parameters": {...}}``; errors are ``{"error": "message"}`` with a 4xx/5xx status.

Triton's *binary tensor data* extension is supported on both sides: the body is the JSON
header followed by raw little-endian tensor bytes; the header's length travels in the
``Inference-Header-Content-Length`` HTTP header and each binary tensor says its size in
``parameters.binary_data_size``. An output is asked for in binary with
``{"name": ..., "parameters": {"binary_data": true}}``. It avoids printing and parsing
floats as text, which dominates the cost of JSON for image batches.

Texts travel as ``BYTES`` tensors: in JSON, ``data`` is a list of strings; in binary, each
element is its UTF-8 bytes prefixed by their length as a 4-byte little-endian integer.
Decoded, a ``BYTES`` tensor is a numpy array of ``str`` objects (dtype ``object``); one
that is not valid UTF-8 is refused (these are texts for a text model).

Output names follow MLServer's scikit-learn runtime so one client speaks to both servers:
``predict_proba`` (class probabilities, ``(N, C)``) and ``predict`` (labels, ``(N,)``).

Everything here is pure (bytes and numpy arrays in and out); malformed data raises
:class:`ProtocolError` whose message is fit to send back to the caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INPUT_NAME = "input"
SCORES_OUTPUT = "predict_proba"
LABELS_OUTPUT = "predict"
HEADER_LENGTH = "inference-header-content-length"
BINARY_EXTENSION = "binary_tensor_data"
BINARY_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"

#: V2 datatype name -> numpy dtype (little-endian, as the binary extension requires).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
#: The datatype of variable-length elements (texts): numpy arrays of ``str`` objects.
BYTES = "BYTES"
_KIND_OK = {"b": "b", "u": "bui", "i": "bui", "f": "buif"}  # JSON value kinds each accepts


class ProtocolError(ValueError):
    """A request or response does not follow the protocol; the message says what is wrong."""


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype name of a numpy array's dtype (``float32`` -> ``"FP32"``; an
    ``object`` array of strings -> ``"BYTES"``)."""
    if array.dtype == np.dtype(object):
        return BYTES
    for name, dt in DATATYPES.items():
        if array.dtype == dt or array.dtype == dt.newbyteorder("="):
            return name
    raise ProtocolError(f"no V2 datatype for numpy dtype {array.dtype}")


@dataclass
class WireTensor:
    """One named tensor of a request or response."""

    name: str
    array: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferRequest:
    """A decoded inference request: inputs, requested outputs (name -> wants binary) and
    request parameters."""

    inputs: list[WireTensor]
    outputs: dict[str, bool]
    parameters: dict[str, Any]


# ----------------------------------------------------------------------------- helpers
def _shape(raw: Any, what: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw
    ):
        raise ProtocolError(f"{what}: 'shape' must be a list of non-negative integers, got {raw!r}")
    return tuple(raw)


def _json_data(data: Any, dtype: np.dtype[Any], shape: tuple[int, ...], what: str) -> np.ndarray:
    """A JSON ``data`` value (flat or nested row-major list) as an array of ``shape``."""
    if not isinstance(data, list):
        raise ProtocolError(f"{what}: 'data' must be a list of numbers")
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError):
        raise ProtocolError(f"{what}: 'data' is a ragged or mixed list") from None
    if raw.size and raw.dtype.kind not in _KIND_OK.get(dtype.kind, ""):
        raise ProtocolError(
            f"{what}: 'data' holds {raw.dtype.kind!r}-kind values that are not valid "
            f"for datatype {_name_of(dtype)} (expected numbers)"
        )
    if dtype.kind != "b" and raw.size and _holds_bool(data, raw.ndim):
        raise ProtocolError(
            f"{what}: 'data' holds true/false, which are not numbers for datatype "
            f"{_name_of(dtype)}; send 1.0/0.0, or declare the datatype BOOL"
        )
    n = math.prod(shape)
    if raw.size != n:
        raise ProtocolError(
            f"{what}: 'data' has {raw.size} values but shape {list(shape)} needs {n}"
        )
    try:
        return raw.astype(dtype, copy=False).reshape(shape)
    except (ValueError, OverflowError):
        raise ProtocolError(
            f"{what}: 'data' values do not fit datatype {_name_of(dtype)}"
        ) from None


def _holds_bool(data: list[Any], depth: int) -> bool:
    """Whether a nested list of ``depth`` levels holds a JSON ``true``/``false``
    (numpy silently reads them as 1/0 next to numbers)."""
    if depth <= 1:
        return any(v is True or v is False for v in data)
    return any(isinstance(d, list) and _holds_bool(d, depth - 1) for d in data)


def _name_of(dtype: np.dtype[Any]) -> str:
    for name, dt in DATATYPES.items():
        if dt == dtype:
            return name
    return str(dtype)


def _split_body(body: bytes, header_length: int | None) -> tuple[Any, memoryview]:
    """Parse the JSON header of ``body``; return it and the binary remainder."""
    if header_length is None:
        head, rest = body, memoryview(b"")
    else:
        if header_length < 0 or header_length > len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {header_length} does not fit a body of "
                f"{len(body)} bytes"
            )
        head, rest = body[:header_length], memoryview(body)[header_length:]
    try:
        obj = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise ProtocolError("body is not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"body must be a JSON object, got {type(obj).__name__}")
    return obj, rest


def _decode_tensor(raw: Any, rest: memoryview, offset: int, what: str) -> tuple[WireTensor, int]:
    """One tensor object (request input or response output); returns it and the new
    offset into the binary remainder."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{what} must be an object with name, shape, datatype, data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{what}: 'name' must be a non-empty string")
    what = f"{what} {name!r}"
    shape = _shape(raw.get("shape"), what)
    dt_name = raw.get("datatype")
    if not isinstance(dt_name, str) or (dt_name not in DATATYPES and dt_name != BYTES):
        raise ProtocolError(
            f"{what}: unsupported datatype {dt_name!r}; use one of {', '.join([*DATATYPES, BYTES])}"
        )
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{what}: 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"{what}: binary_data_size must be a non-negative integer")
    if dt_name == BYTES:
        return _decode_bytes(raw, rest, offset, size, shape, params, what)
    dtype = DATATYPES[dt_name]
    if size is not None:
        need = math.prod(shape) * dtype.itemsize
        if size != need:
            raise ProtocolError(
                f"{what}: binary_data_size {size} != {need} bytes for shape {list(shape)} {dt_name}"
            )
        if offset + size > len(rest):
            raise ProtocolError(
                f"{what}: binary data ends early ({len(rest) - offset} < {size} bytes)"
            )
        array = np.frombuffer(rest[offset : offset + size], dtype=dtype).reshape(shape)
        return WireTensor(name, array, params), offset + size
    if "data" not in raw:
        raise ProtocolError(f"{what}: no 'data' (and no parameters.binary_data_size)")
    return WireTensor(name, _json_data(raw["data"], dtype, shape, what), params), offset


def _decode_bytes(
    raw: dict[str, Any],
    rest: memoryview,
    offset: int,
    size: int | None,
    shape: tuple[int, ...],
    params: dict[str, Any],
    what: str,
) -> tuple[WireTensor, int]:
    """A ``BYTES`` tensor (JSON strings, or length-prefixed binary elements) as an array
    of ``str`` of ``shape``; returns it and the new offset."""
    n = math.prod(shape)
    texts: list[str] = []
    if size is not None:
        if offset + size > len(rest):
            raise ProtocolError(
                f"{what}: binary data ends early ({len(rest) - offset} < {size} bytes)"
            )
        blob, pos = bytes(rest[offset : offset + size]), 0
        while pos < size:
            if len(texts) == n:
                raise ProtocolError(
                    f"{what}: binary data holds more than the {n} elements of shape {list(shape)}"
                )
            if pos + 4 > size:
                raise ProtocolError(
                    f"{what}: element {len(texts)}: its 4-byte length runs past the end of "
                    f"the {size} bytes of binary data"
                )
            length = int.from_bytes(blob[pos : pos + 4], "little")
            pos += 4
            if pos + length > size:
                raise ProtocolError(
                    f"{what}: element {len(texts)} says {length} bytes but only "
                    f"{size - pos} are left in the binary data"
                )
            texts.append(_utf8(blob[pos : pos + length], what, len(texts)))
            pos += length
        offset += size
    else:
        if "data" not in raw:
            raise ProtocolError(f"{what}: no 'data' (and no parameters.binary_data_size)")
        texts = _json_strings(raw["data"], what)
        for i, t in enumerate(texts):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise ProtocolError(
                    f"{what}: element {i} is not valid UTF-8 (it has a lone surrogate)"
                ) from None
    if len(texts) != n:
        raise ProtocolError(
            f"{what}: 'data' has {len(texts)} elements but shape {list(shape)} needs {n}"
        )
    array = np.empty(n, dtype=object)
    array[:] = texts
    return WireTensor(str(raw["name"]), array.reshape(shape), params), offset


def _utf8(raw: bytes, what: str, index: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"{what}: element {index} is not valid UTF-8 ({e.reason})") from None


def _json_strings(data: Any, what: str) -> list[str]:
    """The strings of a flat or nested JSON list, in row-major order."""
    if not isinstance(data, list):
        raise ProtocolError(f"{what}: 'data' of a BYTES tensor must be a list of strings")
    out: list[str] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            raise ProtocolError(
                f"{what}: 'data' of a BYTES tensor must hold strings only, got "
                f"{type(item).__name__} {item!r:.40}"
            )
    return out


_END = object()


def _bytes_blob(a: np.ndarray) -> bytes:
    """A ``BYTES`` array in the binary extension's layout: each element's UTF-8 bytes
    after their length (4 bytes, little-endian)."""
    parts = []
    for v in a.reshape(-1).tolist():
        b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        parts += [len(b).to_bytes(4, "little"), b]
    return b"".join(parts)


def _encode_tensors(
    head: dict[str, Any], key: str, tensors: Sequence[WireTensor], binary: set[str]
) -> tuple[bytes, dict[str, str]]:
    """Serialise ``head`` with ``tensors`` under ``key``; tensors named in ``binary`` go
    after the JSON header (binary extension)."""
    items, blobs = [], []
    for t in tensors:
        a = np.ascontiguousarray(t.array)
        entry: dict[str, Any] = {"name": t.name, "shape": list(a.shape), "datatype": datatype_of(a)}
        params = dict(t.parameters)
        if t.name in binary:
            if a.dtype == np.dtype(object):
                blob = _bytes_blob(a)
            else:
                blob = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            params["binary_data_size"] = len(blob)
            blobs.append(blob)
        if params:
            entry["parameters"] = params
        if t.name in binary:
            items.append(_json_text(entry))
        elif a.dtype.kind == "f" and a.dtype.itemsize == 4 and bool(np.isfinite(a).all()):
            # float32 as text: 9 significant digits give back the same float32 (what
            # json.dumps writes for the float64 of each value has 17); printed by one
            # %-format over the whole tensor, ~2x faster to write and ~2.5x to parse
            items.append(_json_text(entry, "data", _float32_text(a)))
        else:
            items.append(_json_text({**entry, "data": a.reshape(-1).tolist()}))
    text = _json_text(head, key, "[" + ",".join(items) + "]").encode()
    if not blobs:
        return text, {"content-type": JSON_CONTENT_TYPE}
    headers = {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(text))}
    return b"".join([text, *blobs]), headers


def _json_text(obj: dict[str, Any], key: str | None = None, value: str = "") -> str:
    """``obj`` as compact JSON, plus the member ``key`` whose value is the JSON text
    ``value`` (already serialised: spliced in, not encoded again)."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    if key is None:
        return text
    sep = "," if obj else ""
    return f"{text[:-1]}{sep}{json.dumps(key)}:{value}}}"


def _float32_text(a: np.ndarray) -> str:
    """A finite float32 array as a flat JSON list: ``%.8e`` (9 significant digits, which
    read back as float32 give the same values; always a float, never an int)."""
    values = a.reshape(-1).tolist()
    if not values:
        return "[]"
    return "[" + (("%.8e," * len(values)) % tuple(values))[:-1] + "]"


# ----------------------------------------------------------------------------- requests
def encode_request(
    x: np.ndarray,
    *,
    input_name: str = INPUT_NAME,
    outputs: Sequence[str] = (),
    binary: bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and HTTP headers of an inference request for the batch ``x`` (N, ...).

    Args:
        x: the input batch; its dtype gives the datatype (use float32 for ``FP32``; an
            ``object`` array of ``str`` for texts, ``BYTES``).
        input_name: the model's input name (``"input"`` for ``advx serve``).
        outputs: output names to ask for (empty: the server's default).
        binary: send ``x`` and ask for the outputs with the binary tensor extension.
        parameters: request-level parameters.

    Raises:
        ProtocolError: NaN or inf in ``x`` when sent as JSON (JSON has no such numbers).
    """
    head: dict[str, Any] = {}
    if outputs:
        head["outputs"] = [
            {"name": o, "parameters": {"binary_data": True}} if binary else {"name": o}
            for o in outputs
        ]
    if parameters:
        head["parameters"] = dict(parameters)
    if not binary and x.dtype.kind == "f" and not bool(np.isfinite(x).all()):
        raise ProtocolError("the batch has NaN or inf values, which JSON cannot carry")
    tensor = WireTensor(input_name, x)
    return _encode_tensors(head, "inputs", [tensor], {input_name} if binary else set())


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse a request body (``header_length`` from ``Inference-Header-Content-Length``
    when the binary extension is used). Raises :class:`ProtocolError`."""
    obj, rest = _split_body(body, header_length)
    raw_inputs = obj.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    inputs, offset = [], 0
    for i, raw in enumerate(raw_inputs):
        t, offset = _decode_tensor(raw, rest, offset, f"inputs[{i}]")
        inputs.append(t)
    if offset != len(rest):
        raise ProtocolError(
            f"{len(rest) - offset} bytes of binary data are not claimed by any input"
        )
    outputs: dict[str, bool] = {}
    raw_outputs = obj.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError("'outputs' must be a list of {name: ...} objects")
        for i, o in enumerate(raw_outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a string 'name'")
            p = o.get("parameters") or {}
            if not isinstance(p, dict):
                raise ProtocolError(f"outputs[{i}]: 'parameters' must be an object")
            outputs[o["name"]] = bool(p.get("binary_data", False))
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be an object")
    return InferRequest(inputs, outputs, params)


# ----------------------------------------------------------------------------- responses
def encode_response(
    model_name: str,
    outputs: Sequence[WireTensor],
    *,
    binary: set[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    model_version: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and HTTP headers of an inference response; outputs named in ``binary`` are
    sent with the binary extension."""
    head: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        head["model_version"] = model_version
    if parameters:
        head["parameters"] = dict(parameters)
    return _encode_tensors(head, "outputs", outputs, binary or set())


def decode_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """The outputs of a response body as ``name -> array``. Raises :class:`ProtocolError`."""
    obj, rest = _split_body(body, header_length)
    raw_outputs = obj.get("outputs")
    if not isinstance(raw_outputs, list):
        raise ProtocolError("response has no 'outputs' list")
    out, offset = {}, 0
    for i, raw in enumerate(raw_outputs):
        t, offset = _decode_tensor(raw, rest, offset, f"outputs[{i}]")
        out[t.name] = t.array
    return out


def error_message(body: bytes) -> str:
    """The ``error`` text of an error response, or the start of the raw body."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        for key in ("error", "detail", "message"):
            if key in obj:
                return str(obj[key])[:500]
    return body[:300].decode("utf-8", "replace").strip() or "(empty body)"
