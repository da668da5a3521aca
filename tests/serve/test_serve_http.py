"""Against the real `ctl serve` process: the vectors, the metrics, and the bad-input table."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controlplane.local.corpus import default_corpus
from tests.serve.conftest import MODEL, Registered, Server, infer_body

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]


@pytest.fixture(scope="module")
def reference(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The in-process encoder's vectors for the corpus, on the same registered files."""
    from controlplane.adapters.mlflow_registry import MlflowRegistry
    from controlplane.models.encoder import OnnxEncoder

    cache = tmp_path_factory.mktemp("reference-cache")
    folder = MlflowRegistry(registered.tracking_uri, None, cache / "art", cache).fetch(MODEL, 1)
    return OnnxEncoder(Path(folder)).encode(default_corpus())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_oip_infer_matches_the_in_process_encoder(server: Server, reference: np.ndarray) -> None:
    corpus = default_corpus()
    # concurrent requests of mixed sizes, so the server batches texts of different requests together
    chunks = [corpus[i : i + 3] for i in range(0, len(corpus), 3)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda texts: server.post(f"/v2/models/{MODEL}/infer", infer_body(texts)), chunks))
    rows = []
    for (status, body), texts in zip(replies, chunks, strict=True):
        assert status == 200, body
        (out,) = body["outputs"]
        assert (body["model_name"], body["model_version"], body["id"]) == (MODEL, "1", "t-1")
        assert (out["name"], out["datatype"], out["shape"]) == ("embedding", "FP32", [len(texts), reference.shape[1]])
        rows.append(np.array(out["data"], dtype=np.float32).reshape(out["shape"]))
    assert cosines(np.concatenate(rows), reference).min() > 0.9999


def test_openai_embeddings_match_the_in_process_encoder(server: Server, reference: np.ndarray) -> None:
    corpus = default_corpus()
    status, body = server.post("/v1/embeddings", {"model": MODEL, "input": corpus})
    assert status == 200, body
    assert body["object"] == "list" and body["model"] == MODEL
    assert [d["index"] for d in body["data"]] == list(range(len(corpus)))
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert cosines(got, reference).min() > 0.9999
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > len(corpus)
    status, one = server.post("/v1/embeddings", {"input": corpus[0], "encoding_format": "base64"})
    assert status == 200
    vector = np.frombuffer(base64.b64decode(one["data"][0]["embedding"]), dtype="<f4")
    assert cosines(vector[None], reference[:1])[0] > 0.9999


def test_health_and_metadata(server: Server) -> None:
    assert server.get("/v2/health/live") == (200, b'{"live":true}')
    status, body = server.get("/v2/health/ready")
    assert status == 200 and json.loads(body) == {"ready": True, "live": True}
    status, body = server.get(f"/v2/models/{MODEL}")
    meta = json.loads(body)
    assert status == 200 and meta["name"] == MODEL and meta["versions"] == ["1"]
    assert meta["inputs"][0]["datatype"] == "BYTES" and meta["outputs"][0]["shape"] == [-1, 384]
    assert server.get(f"/v2/models/{MODEL}/versions/1/ready")[0] == 200
    assert server.get(f"/v2/models/{MODEL}/versions/2/ready")[0] == 404
    status, body = server.get("/openapi.json")
    assert status == 200 and "/v2/models/{name}/infer" in json.loads(body)["paths"]


def counters(server: Server) -> dict[str, float]:
    samples = server.metrics()
    labels = (("model", MODEL), ("role", "canary"), ("version", "1"))

    def value(name: str, *extra: tuple[str, str]) -> float:
        return samples.get((name, tuple(sorted((*labels, *extra)))), 0.0)

    return {
        **{o: value("model_requests_total", ("outcome", o)) for o in ("ok", "error", "invalid")},
        "duration_count": value("model_request_duration_seconds_count"),
        "tokens_count": value("model_request_tokens_count"),
        "batched_texts": value("model_batch_size_sum"),
        "bad_input": value("model_inference_errors_total", ("kind", "bad_input")),
        "truncations": value("model_truncations_total"),
        "tokenization_errors": value("model_tokenization_errors_total"),
        "inflight": value("model_inflight_requests"),
    }


def test_metrics_count_each_request_with_its_labels_and_outcome(server: Server) -> None:
    before = counters(server)
    for texts in (["one"], ["two", "three"], ["four", "five", "six"]):
        assert server.post(f"/v2/models/{MODEL}/infer", infer_body(texts))[0] == 200
    assert server.post("/v1/embeddings", {"input": "x " * 400})[0] == 200  # truncated to the model's length
    assert server.post("/v1/embeddings", {"input": []})[0] == 400
    assert server.post(f"/v2/models/{MODEL}/infer", {"inputs": []})[0] == 400
    after = counters(server)
    delta = {k: after[k] - before[k] for k in before}
    assert delta == {
        "ok": 4, "error": 0, "invalid": 2, "duration_count": 6, "tokens_count": 7, "batched_texts": 7,
        "bad_input": 2, "truncations": 1, "tokenization_errors": 0, "inflight": 0,
    }  # fmt: skip
    samples = server.metrics()
    assert samples[("model_load_seconds", (("model", MODEL), ("role", "canary"), ("version", "1")))] > 0


LONG = "word " * 600
OIP = f"/v2/models/{MODEL}/infer"


def oip(data: Any, shape: Any = None, datatype: str = "BYTES") -> dict[str, Any]:
    n = len(data) if isinstance(data, list) else 1
    return {"inputs": [{"name": "text", "shape": [n] if shape is None else shape, "datatype": datatype, "data": data}]}


BAD_INPUT: list[tuple[str, str, bytes, int]] = [
    ("invalid JSON", OIP, b'{"inputs": [', 400),
    ("not an object", OIP, b"[1, 2]", 400),
    ("missing inputs", OIP, b"{}", 400),
    ("inputs not a list", OIP, json.dumps({"inputs": "hello"}).encode(), 400),
    ("empty batch", OIP, json.dumps(oip([])).encode(), 400),
    ("wrong datatype", OIP, json.dumps(oip(["a"], datatype="FP32")).encode(), 400),
    ("data not strings", OIP, json.dumps(oip([1, 2])).encode(), 400),
    ("shape mismatch", OIP, json.dumps(oip(["a", "b"], shape=[3])).encode(), 400),
    ("negative shape", OIP, json.dumps(oip(["a"], shape=[-1])).encode(), 400),
    ("two inputs", OIP, json.dumps({"inputs": oip(["a"])["inputs"] * 2}).encode(), 400),
    ("unknown output", OIP, json.dumps({**oip(["a"]), "outputs": [{"name": "logits"}]}).encode(), 400),
    ("batch above the limit", OIP, json.dumps(oip(["a"] * 257)).encode(), 413),
    ("non-UTF-8 bytes", OIP, b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["\xff\xfe"]}]}', 400),
    ("lone surrogate", OIP, b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["\\ud800"]}]}', 400),
    ("unknown model", "/v2/models/nope/infer", json.dumps(oip(["a"])).encode(), 404),
    ("unknown version", f"/v2/models/{MODEL}/versions/7/infer", json.dumps(oip(["a"])).encode(), 404),
    ("openai: invalid JSON", "/v1/embeddings", b"{", 400),
    ("openai: missing input", "/v1/embeddings", b'{"model": "serve-minilm"}', 400),
    ("openai: input wrongly typed", "/v1/embeddings", b'{"input": 3}', 400),
    ("openai: token arrays", "/v1/embeddings", b'{"input": [[1, 2, 3]]}', 400),
    ("openai: empty batch", "/v1/embeddings", b'{"input": []}', 400),
    ("openai: batch above the limit", "/v1/embeddings", json.dumps({"input": ["a"] * 300}).encode(), 413),
    ("openai: unknown model", "/v1/embeddings", b'{"model": "gpt-4", "input": "a"}', 404),
    ("openai: bad encoding_format", "/v1/embeddings", b'{"input": "a", "encoding_format": "int8"}', 400),
    ("openai: non-UTF-8 bytes", "/v1/embeddings", b'{"input": "\xc3\x28"}', 400),
]


@pytest.mark.parametrize(("case", "path", "body", "status"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_4xx_with_an_error_body_and_the_next_request_is_served(
    server: Server, case: str, path: str, body: bytes, status: int
) -> None:
    before = counters(server)
    got, _, reply = server.request("POST", path, body)
    assert got == status, reply
    error = json.loads(reply)["error"]
    message = error["message"] if path == "/v1/embeddings" else error
    assert isinstance(message, str) and message and "\n" not in message
    after = counters(server)
    assert (after["invalid"] - before["invalid"], after["error"] - before["error"]) == (1, 0)
    assert server.post("/v1/embeddings", {"input": "still serving"})[0] == 200


def test_unknown_route_and_method_are_4xx(server: Server) -> None:
    assert server.request("GET", "/v3/anything")[0] == 404
    assert server.request("GET", OIP)[0] == 405
