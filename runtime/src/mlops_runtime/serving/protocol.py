"""The open inference protocol (V2) on the wire: requests parsed and checked against the model's columns,
answers encoded, JSON or binary (Triton's binary_tensor_data extension, what tritonclient sends).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..config import Params, Serve
from ..errors import ParamsError

NUMERIC_TYPES = {"double", "float", "long", "integer"}
NUMERIC_DATATYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}

# Generous size of one JSON value in a request, for the body size limit.
BYTES_PER_VALUE = 256


# Binary data extension (Triton's binary_tensor_data, what tritonclient sends by default): the body is a
# JSON header of Inference-Header-Content-Length bytes, then each tensor's raw bytes, little-endian,
# row-major; a BYTES element is its 4-byte length followed by its bytes.
BINARY_HEADER = "Inference-Header-Content-Length"


BINARY_DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


OUTPUT_NAME = "output-1"


@dataclass(frozen=True)
class TextLimits:
    """How much text one request may carry, in characters (serve.max_value_chars / serve.max_request_chars)."""

    value_chars: int = Serve.model_fields["max_value_chars"].default
    request_chars: int = Serve.model_fields["max_request_chars"].default

    @classmethod
    def of(cls, params: Params) -> TextLimits:
        return cls(params.serve.max_value_chars, params.serve.max_request_chars)


DEFAULT_TEXT_LIMITS = TextLimits()


class BadRequest(ValueError):
    """The request breaks the protocol or the model's input schema; `status` is the 4xx to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InputColumn:
    name: str
    numeric: bool
    nullable: bool

    @property
    def datatype(self) -> str:
        return "FP64" if self.numeric else "BYTES"


def input_columns(model: Any, params: Params | None) -> list[InputColumn]:
    """The model's inputs from its MLflow signature; nullability from the data contract in params.yaml."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise ParamsError("the model has no column signature: train it with this project's train stage")
    contract = params.data.columns if params else {}
    columns = []
    for spec in schema.inputs:
        declared = contract.get(spec.name)
        nullable = declared.nullable if declared else not spec.required
        columns.append(InputColumn(spec.name, getattr(spec.type, "name", str(spec.type)) in NUMERIC_TYPES, nullable))
    return columns


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parameters(item: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: 'parameters' must be an object")
    return parameters


def _decode_binary(name: str, datatype: Any, raw: bytes) -> list[Any]:
    """One input's values from its bytes in the binary data; NaN (the only missing value binary has) as None."""
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"input '{name}': binary BYTES data ends inside an element's 4-byte length")
            (length,) = struct.unpack_from("<I", raw, offset)
            element = raw[offset + 4 : offset + 4 + length]
            if len(element) != length:
                raise BadRequest(f"input '{name}': binary BYTES element of {length} bytes runs past its data")
            try:
                values.append(element.decode())
            except UnicodeDecodeError:
                raise BadRequest(f"input '{name}' row {len(values)}: binary BYTES element is not UTF-8") from None
            offset += 4 + length
        return values
    dtype = BINARY_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"input '{name}': datatype {datatype!r} cannot be sent as binary data here")
    if len(raw) % np.dtype(dtype).itemsize:
        raise BadRequest(f"input '{name}': {len(raw)} bytes of binary data is not a whole number of {datatype}")
    values = np.frombuffer(raw, dtype=dtype).tolist()
    if datatype.startswith("FP"):
        values = [None if v != v else v for v in values]  # NaN is not equal to itself
    return values


def _column_values(item: dict[str, Any], index: int, binary: bytes, offset: int) -> tuple[str, list[Any], int]:
    """The input's name and values (from 'data' or the binary data at `offset`), and the next offset."""
    name = item.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{index}].name must be a string: the column's name (open inference protocol v2)")
    datatype = item.get("datatype")
    if datatype is not None and not isinstance(datatype, str):
        raise BadRequest(f"input '{name}': 'datatype' must be a string such as FP64 or BYTES")
    size = _parameters(item, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if not _is_count(size):
            raise BadRequest(f"input '{name}': parameters.binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise BadRequest(
                f"input '{name}': binary_data_size {size} runs past the {len(binary)} bytes of binary data "
                f"after the JSON header ({BINARY_HEADER})"
            )
        data = _decode_binary(name, datatype, binary[offset : offset + size])
        offset += size
    else:
        data = item.get("data")
        if not isinstance(data, list):
            raise BadRequest(f"input '{name}': 'data' must be a list of values (or use the binary data extension)")
        if data and isinstance(data[0], list):  # row-major [[v], [v], ...] for shape [N, 1]
            if any(not isinstance(row, list) or len(row) != 1 for row in data):
                raise BadRequest(f"input '{name}': nested data must hold one value per row (shape [N, 1])")
            data = [row[0] for row in data]
    shape = item.get("shape", [len(data)])
    if not isinstance(shape, list) or not shape or not all(_is_count(d) for d in shape):
        raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers such as [N], not {shape!r}")
    if math.prod(shape) != len(data) or any(d != 1 for d in shape[1:]):
        raise BadRequest(f"input '{name}': shape {shape} does not match {len(data)} values; use [N] or [N, 1]")
    return name, data, offset


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


NUMBER_TYPES, TEXT_TYPES = frozenset({int, float, type(None)}), frozenset({str, type(None)})


def _column_array(column: InputColumn, datatype: Any, values: list[Any]) -> np.ndarray:
    """A checked column as numpy: float64 (missing as NaN) or objects (missing as None); BadRequest if wrong.

    The usual request is checked at C speed (value types as a set, nulls counted); anything
    unusual goes through the value-by-value check, which names the row and what is wrong.
    """
    expected = NUMERIC_DATATYPES if column.numeric else {"BYTES"}
    if datatype is not None and datatype not in expected:
        raise BadRequest(f"input '{column.name}': datatype {datatype!r} is wrong, send {column.datatype}")
    types = set(map(type, values))
    nulls_allowed = column.nullable or None not in values
    if column.numeric and types <= NUMBER_TYPES and nulls_allowed:
        try:
            array = np.array(values, dtype=float)
        except OverflowError:  # an integer too large for a float: named below
            array = None
        # Every NaN is a null (JSON's NaN and Infinity tokens are not numbers here).
        if array is not None and np.isnan(array).sum() == values.count(None) and not np.isinf(array).any():
            return array
    elif not column.numeric and types <= TEXT_TYPES and nulls_allowed:
        return np.array(values, dtype=object)
    _check_values(column, values)
    return np.array(values, dtype=float) if column.numeric else np.array(values, dtype=object)


def _check_values(column: InputColumn, values: list[Any]) -> None:
    for row, value in enumerate(values):
        if value is None:
            if not column.nullable:
                raise BadRequest(f"input '{column.name}' row {row}: null is not allowed for this column")
        elif column.numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(f"input '{column.name}' row {row}: {value!r} is not a number")
        elif column.numeric and not _finite(value):
            raise BadRequest(f"input '{column.name}' row {row}: {value!r} is not a finite number; send null if missing")
        elif not column.numeric and not isinstance(value, str):
            raise BadRequest(f"input '{column.name}' row {row}: {value!r} is not a string")


def _check_text(column: InputColumn, values: list[Any], limits: TextLimits) -> int:
    """The characters of a checked text column; BadRequest (413) naming the row when one value is over the limit.

    Everything after the parse works on these values (the text normalisation, the encoder), so a
    limit here bounds the work and memory of the whole request.
    """
    texts = list(filter(None, values))  # no None (missing) nor "" (nothing to count)
    longest = max(map(len, texts), default=0)
    if longest > limits.value_chars:
        row = next(i for i, v in enumerate(values) if v is not None and len(v) == longest)
        raise BadRequest(
            f"input '{column.name}' row {row}: a value of {longest} characters is over the limit of "
            f"{limits.value_chars} (serve.max_value_chars)",
            413,
        )
    return sum(map(len, texts))


@dataclass
class InferRequest:
    """A checked request: its columns as numpy arrays (float64 with NaN, or objects with None), in model order."""

    columns: dict[str, np.ndarray]
    id: str | None
    binary_output: bool  # answer the output in the binary data extension
    _frame: pd.DataFrame | None = None

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def frame(self) -> pd.DataFrame:
        """The columns as a DataFrame, built only when asked for (pyfunc needs it; the fast path does not)."""
        if self._frame is None:
            self._frame = pd.DataFrame(self.columns)
        return self._frame


def _wants_binary_output(payload: dict[str, Any]) -> bool:
    """Whether the request asks for the output as binary data, for all outputs or for ours by name."""
    binary = _parameters(payload, "the request").get("binary_data_output", False) is True
    outputs = payload.get("outputs")
    if outputs is None:
        return binary
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadRequest(f"'outputs' must be a list of objects, each naming an output: '{OUTPUT_NAME}'")
    for output in outputs:
        if output.get("name") != OUTPUT_NAME:
            raise BadRequest(f"output {output.get('name')!r} is not one of this model's outputs: ['{OUTPUT_NAME}']")
        binary = _parameters(output, f"output '{OUTPUT_NAME}'").get("binary_data", binary) is True
    return binary


def parse_request(
    body: bytes,
    columns: list[InputColumn],
    max_rows: int,
    header_length: int | None = None,
    text_limits: TextLimits = DEFAULT_TEXT_LIMITS,
) -> InferRequest:
    """A V2 inference request as columns in the model's order; BadRequest if wrong.

    With `header_length` (the binary data extension), the first that many bytes are the JSON
    and the rest are the tensors whose inputs give a `binary_data_size`. Text values longer than
    `text_limits` allow, one by one or all together, get 413.
    """
    binary = b""
    if header_length is not None:
        if header_length > len(body):
            raise BadRequest(f"{BINARY_HEADER} {header_length} is more than the {len(body)} bytes of the body")
        body, binary = body[:header_length], body[header_length:]
    if not body.strip():
        raise BadRequest('empty body: send {"inputs": [{"name": ..., "datatype": ..., "shape": [N], "data": [...]}]}')
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("the body needs a non-empty 'inputs' list, one entry per column")
    received: dict[str, tuple[Any, list[Any]]] = {}
    offset = 0
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise BadRequest(f"inputs[{index}] must be an object with name, datatype, shape and data")
        name, values, offset = _column_values(item, index, binary, offset)
        if name in received:
            raise BadRequest(f"input '{name}' is sent twice")
        received[name] = (item.get("datatype"), values)
    if offset != len(binary):
        raise BadRequest(
            f"the inputs' binary_data_size add up to {offset} bytes, but {len(binary)} bytes follow the JSON header"
        )
    expected = [c.name for c in columns]
    missing = [name for name in expected if name not in received]
    extra = [name for name in received if name not in expected]
    if missing or extra:
        parts = [f"missing {missing}" if missing else "", f"unknown {extra}" if extra else ""]
        raise BadRequest(f"inputs do not match the model: {', '.join(p for p in parts if p)}; expected {expected}")
    rows = {len(values) for _, values in received.values()}
    if len(rows) != 1:
        raise BadRequest(f"inputs have different numbers of rows {sorted(rows)}: send the same N for every column")
    n_rows = rows.pop()
    if n_rows == 0:
        raise BadRequest("the request has no rows")
    if n_rows > max_rows:
        raise BadRequest(f"{n_rows} rows is over the limit of {max_rows} per request: split the batch", 413)
    arrays, characters = {}, {}
    for column in columns:
        datatype, values = received[column.name]
        arrays[column.name] = _column_array(column, datatype, values)
        if not column.numeric:
            characters[column.name] = _check_text(column, values, text_limits)
    if sum(characters.values()) > text_limits.request_chars:
        most = max(characters, key=characters.__getitem__)
        raise BadRequest(
            f"the request's text values hold {sum(characters.values())} characters ({characters[most]} in input "
            f"'{most}'), over the limit of {text_limits.request_chars} (serve.max_request_chars): split the batch",
            413,
        )
    request_id = payload.get("id")
    return InferRequest(arrays, request_id if isinstance(request_id, str) else None, _wants_binary_output(payload))


def encode_request(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as a V2 inference request body (missing values as null): for clients, tests and the benchmark."""
    inputs = []
    for name in frame.columns:
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column)
        values = [None if pd.isna(v) else (float(v) if numeric else str(v)) for v in column.tolist()]
        inputs.append(
            {"name": name, "datatype": "FP64" if numeric else "BYTES", "shape": [len(values)], "data": values}
        )
    return {"inputs": inputs}


def output_datatype(values: np.ndarray) -> str:
    if values.dtype.kind in "iu":
        return "INT64"
    if values.dtype.kind == "f":
        return "FP64"
    if values.dtype.kind == "b":
        return "BOOL"
    return "BYTES"


def binary_output(values: np.ndarray, datatype: str) -> bytes:
    """Predictions as the raw bytes of the binary data extension."""
    if datatype == "BYTES":
        encoded = [str(v).encode() for v in values.tolist()]
        return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    return values.astype(BINARY_DTYPES[datatype], copy=False).tobytes()
