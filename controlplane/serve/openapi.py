"""The OpenAPI 3.1 document ``ctl serve`` publishes at ``/openapi.json`` (checked live by schemathesis)."""

from __future__ import annotations

from typing import Any

from controlplane import __version__

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _reply(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}
    if headers:
        out["headers"] = headers
    return out


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}},
            }
        },
    },
    "Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "Ready": {
        "type": "object",
        "required": ["ready", "live"],
        "properties": {"ready": {"type": "boolean"}, "live": {"type": "boolean"}},
    },
    "ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": ["BYTES"]},
                        "data": {"type": "array", "items": {"type": "string"}},
                        "parameters": {"type": "object"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string", "enum": ["embedding"]}}},
            },
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string", "enum": ["FP32"]},
                        "data": {"type": "array", "items": {"type": "number"}},
                    },
                },
            },
        },
    },
    "EmbeddingsRequest": {
        "type": "object",
        "required": ["input"],
        "properties": {
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
            "model": {"type": "string"},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer"},
            "user": {"type": "string"},
        },
    },
    "EmbeddingsResponse": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["object", "index", "embedding"],
                    "properties": {
                        "object": {"type": "string", "enum": ["embedding"]},
                        "index": {"type": "integer"},
                        "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]},
                    },
                },
            },
            "model": {"type": "string"},
            "usage": {
                "type": "object",
                "required": ["prompt_tokens", "total_tokens"],
                "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
            },
        },
    },
}


def _path_param(name: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "example": example}


_INFER_EXAMPLE = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "a longer sentence"]}]}
_EMBEDDINGS_EXAMPLE = {"input": ["hello", "a longer sentence"]}


def _infer(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": "Embed texts (Open Inference Protocol v2)",
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": _ref("InferRequest"), "example": _INFER_EXAMPLE}},
            },
            "responses": {
                "200": _reply("FP32 embeddings, shape [n, dim]", "InferResponse"),
                "400": _reply("bad input", "Error"),
                "404": _reply("unknown model or version", "Error"),
                "413": _reply("too many texts or too large a body", "Error"),
                "503": _reply("loading, or overloaded: retry after Retry-After", "Error", _RETRY),
            },
        }
    }


def _get(summary: str, schema: str, params: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": {"200": _reply(summary, schema), **extra}}}


def openapi_document(model: str, version: int) -> dict[str, Any]:
    """The document for this server; the path parameters' examples name the served model and version."""
    name, versioned = _path_param("name", model), _path_param("version", str(version))
    not_found = {"404": _reply("unknown model or version", "Error")}
    not_ready = {"503": _reply("not ready", "Ready")}
    model_not_ready = {"503": _reply("not ready", "ModelReady")}
    paths: dict[str, Any] = {
        "/v2/health/live": _get("Liveness", "Live", [], {}),
        "/v2/health/ready": _get("Readiness: model loaded and warmed up", "Ready", [], not_ready),
        "/v2": _get("Server metadata", "ServerMetadata", [], {}),
    }
    for prefix, params in (("/v2/models/{name}", [name]), ("/v2/models/{name}/versions/{version}", [name, versioned])):
        paths[prefix] = _get("Model metadata", "ModelMetadata", params, not_found)
        paths[f"{prefix}/ready"] = _get("Model readiness", "ModelReady", params, {**not_found, **model_not_ready})
        paths[f"{prefix}/infer"] = _infer(params)
    paths["/v1/embeddings"] = {
        "post": {
            "summary": "Embed texts (OpenAI-compatible)",
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": _ref("EmbeddingsRequest"), "example": {**_EMBEDDINGS_EXAMPLE, "model": model}}},
            },
            "responses": {
                "200": _reply("embeddings", "EmbeddingsResponse"),
                "400": _reply("bad input", "OpenAIError"),
                "404": _reply("model not served here", "OpenAIError"),
                "413": _reply("too many texts or too large a body", "OpenAIError"),
                "503": _reply("loading, or overloaded: retry after Retry-After", "OpenAIError", _RETRY),
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ctl serve", "version": __version__,
                 "description": "Sentence embeddings over the Open Inference Protocol v2 REST and the OpenAI embeddings API."},
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
