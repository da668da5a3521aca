"""Real all-MiniLM-L6-v2 variants for the validator tests, built once and cached under ``.cache/``.

Each variant is a directory in the layout ``ModelRegistry.fetch`` returns (``model.onnx`` beside the
Hugging Face files), so the checks can run on it directly, without a registry:

* ``healthy``           fp32 export of the packaged model;
* ``int8-per-channel``  dynamic int8, per-channel weights (what ``ctl register --quantize int8`` makes);
* ``int8-per-tensor``   dynamic int8, onnxruntime's default per-tensor weights (visibly degraded);
* ``normalizer``        same weights, tokenizer normalizer no longer lowercases;
* ``collapsed``         layer 3's heads share head 0's query/key projection (identical attention maps);
* ``short-positions``   position embeddings cut to 64 rows while the tokenizer still truncates at 128.

Run ``python -m tests.validators.fixtures`` to build the cache ahead of the tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from validators.result import ModelUnderTest

CACHE_VERSION = "v1"  # bump when a builder changes
COLLAPSED_LAYER = 3
SHORT_POSITIONS = 64
HF_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
VARIANTS = ("healthy", "int8-per-channel", "int8-per-tensor", "normalizer", "collapsed", "short-positions")


def cache_root() -> Path:
    root = os.environ.get("VALIDATORS_CACHE") or Path(__file__).resolve().parents[2] / ".cache" / "validators"
    return Path(root) / CACHE_VERSION


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy_hf(src: Path, dst: Path, weights: bool) -> None:
    names = list(HF_FILES) + (["model.safetensors"] if weights else [])
    for name in names:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _build(root: Path, name: str, make: Callable[[Path], None]) -> Path:
    target = root / name
    if (target / "model.onnx").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        make(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_variants(root: Path | None = None) -> dict[str, Path]:
    """All variant directories, built when missing (idempotent, safe across processes)."""
    from controlplane import models

    root = root or cache_root()
    src = models.minilm_dir()
    with _locked(root):
        healthy = _build(root, "healthy", lambda d: (_copy_hf(src, d, True), models.export_onnx(d, d / "model.onnx")))

        def quantized(per_channel: bool) -> Callable[[Path], None]:
            def make(d: Path) -> None:
                _copy_hf(healthy, d, False)
                models.quantize_int8(healthy / "model.onnx", d / "model.onnx", per_channel=per_channel)

            return make

        def edited(edit: Callable[[Path, Path], object], reexport: bool) -> Callable[[Path], None]:
            def make(d: Path) -> None:
                hf = d / "hf"
                edit(healthy, hf)
                _copy_hf(hf, d, True)
                shutil.rmtree(hf)
                if reexport:
                    models.export_onnx(d, d / "model.onnx")
                else:
                    shutil.copy2(healthy / "model.onnx", d / "model.onnx")

            return make

        out = {"healthy": healthy}
        out["int8-per-channel"] = _build(root, "int8-per-channel", quantized(True))
        out["int8-per-tensor"] = _build(root, "int8-per-tensor", quantized(False))
        out["normalizer"] = _build(root, "normalizer", edited(lambda s, d: models.change_normalizer(s, d), False))
        out["collapsed"] = _build(root, "collapsed", edited(lambda s, d: models.collapse_heads(s, d, COLLAPSED_LAYER), True))
        out["short-positions"] = _build(
            root, "short-positions", edited(lambda s, d: models.cut_positions(s, d, SHORT_POSITIONS), True)
        )
    return out


def build_tiny(root: Path | None = None) -> Path:
    """A randomly initialised 2-layer, 4-head BERT with MiniLM's tokenizer: a different architecture."""
    root = root or cache_root()

    def make(d: Path) -> None:
        import torch
        from transformers import BertConfig, BertModel

        from controlplane import models

        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=512)  # fmt: skip
        BertModel(config).save_pretrained(str(d))
        src = models.minilm_dir()
        for name in HF_FILES[1:]:
            shutil.copy2(src / name, d / name)
        models.export_onnx(d, d / "model.onnx")

    with _locked(root):
        return _build(root, "tiny", make)


def build_broken(root: Path | None = None) -> dict[str, Path]:
    """Bad-input artifacts: ``corrupt.onnx`` (truncated), ``plain.onnx`` (a text graph without attention)."""
    import onnx
    from onnx import TensorProto, helper

    root = root or cache_root()
    folder = root / "broken"
    healthy = build_variants(root)["healthy"] / "model.onnx"
    with _locked(root):
        folder.mkdir(parents=True, exist_ok=True)
        corrupt = folder / "corrupt.onnx"
        if not corrupt.is_file():
            with open(healthy, "rb") as fh:
                corrupt.write_bytes(fh.read(1 << 20))
        plain = folder / "plain.onnx"
        if not plain.is_file():
            graph = helper.make_graph(
                [helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
                 helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["ids_f", "mask_f"], ["last_hidden_state"])],
                "plain",
                [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
                 for n in ("input_ids", "attention_mask")],
                [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence"])],
            )  # fmt: skip
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            onnx.checker.check_model(model)
            onnx.save(model, str(plain))
    return {"corrupt": corrupt, "plain": plain}


def under_test(name: str, path: Path) -> ModelUnderTest:
    return ModelUnderTest(ref=f"local:{name}", model_dir=path, onnx_path=path / "model.onnx")


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    for key, path in build_variants().items():
        print(f"{key:18s} {path}")
    print(f"{'tiny':18s} {build_tiny()}")
    print(build_broken())
    print(f"built in {time.perf_counter() - t0:.1f} s")
