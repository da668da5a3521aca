"""Request bodies of the two protocols, checked; anything wrong is a ``BadRequest`` (a 4xx, never a 500).

Open Inference Protocol v2: one ``BYTES`` input of shape ``[n]`` or ``[n, 1]`` whose ``data`` are the
texts (flat or nested, row-major). OpenAI: ``input`` is a string or a list of strings.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTPUT_NAME = "embedding"
INPUT_NAME = "text"


class BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class OipRequest:
    texts: list[str]
    request_id: str | None
    input_name: str


@dataclass(frozen=True)
class OpenAIRequest:
    texts: list[str]
    base64: bool


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadRequest(400, f"invalid JSON: {exc}") from None


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    return doc


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise BadRequest(400, "empty batch: send at least one text")
    if n > limit:
        raise BadRequest(413, f"{n} texts in one request; the limit is {limit}", "too_many_texts")


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(400, "inputs[0].data must be a list of strings")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > 8:
                    raise BadRequest(400, "inputs[0].data is nested too deeply")
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def oip_request(doc: Any, limit: int) -> OipRequest:
    doc = _object(doc)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(400, "id must be a string")
    if doc.get("parameters") is not None and not isinstance(doc["parameters"], dict):
        raise BadRequest(400, "parameters must be an object")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(400, "inputs must be a non-empty list with one BYTES tensor of texts")
    if len(inputs) != 1:
        raise BadRequest(400, f"expected exactly one input (the texts), got {len(inputs)}")
    tensor = _object_field(inputs[0], "inputs[0]")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(400, "inputs[0].name must be a non-empty string")
    if tensor.get("datatype") != "BYTES":
        raise BadRequest(400, f"inputs[0].datatype must be BYTES (texts), got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(400, "inputs[0].shape must be a list of non-negative integers")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise BadRequest(400, f"inputs[0].shape must be [n] or [n, 1], got {shape}")
    texts = _flatten(tensor.get("data"))
    if math.prod(shape) != len(texts):
        raise BadRequest(400, f"inputs[0].shape {shape} does not match its {len(texts)} data elements")
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest(400, "inputs[0].data must hold strings (BYTES as UTF-8 text)")
    _check_count(len(texts), limit)
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise BadRequest(400, "outputs must be a list of objects")
        unknown = [o.get("name") for o in outputs if o.get("name") != OUTPUT_NAME]
        if unknown:
            raise BadRequest(400, f"unknown output {unknown[0]!r}: this model has one output, {OUTPUT_NAME!r}")
    return OipRequest(texts, request_id, name)


def _object_field(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(400, f"{where} must be an object")
    return value


def openai_request(doc: Any, limit: int, served: set[str], dim: int) -> OpenAIRequest:
    doc = _object(doc)
    model = doc.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise BadRequest(400, "model must be a string")
        if model not in served:
            raise BadRequest(404, f"model {model!r} is not served here (serving {', '.join(sorted(served))})",
                             "model_not_found")
    value = doc.get("input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        texts = list(value)
    elif isinstance(value, list) and value and all(isinstance(t, (int, list)) for t in value):
        raise BadRequest(400, "token arrays are not supported: send the texts")
    else:
        raise BadRequest(400, "input must be a string or a list of strings")
    _check_count(len(texts), limit)
    fmt = doc.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise BadRequest(400, f"encoding_format must be float or base64, got {fmt!r}")
    dims = doc.get("dimensions")
    if dims is not None and dims != dim:
        raise BadRequest(400, f"dimensions: this model returns {dim}-dimensional embeddings only")
    user = doc.get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest(400, "user must be a string")
    return OpenAIRequest(texts, fmt == "base64")


def oip_response(model: str, version: int, request_id: str | None, vectors: np.ndarray) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": [
            {"name": OUTPUT_NAME, "shape": list(vectors.shape), "datatype": "FP32", "data": vectors.ravel().tolist()}
        ],
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def openai_response(model: str, vectors: np.ndarray, tokens: int, as_base64: bool) -> dict[str, Any]:
    def encode(row: np.ndarray) -> Any:
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") if as_base64 else row.tolist()

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(row)} for i, row in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
