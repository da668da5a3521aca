"""head-collapse: have a layer's attention heads become copies of each other, uniform, or dead?

Runs on the registered ONNX artifact itself (fp32, int8 or fp16): the graph is extended to also
output each layer's attention probabilities (the Softmax) and per-head contexts (probabilities x
values), see ``controlplane.models.onnx_graph.attention_graph``. On the built-in probe corpus, per
layer and head:

* pairwise cosine similarity between heads' attention maps (valid query x key positions, all texts);
* normalized attention entropy (1.0 = uniform over the valid keys);
* output norm of each head's context, relative to the model-wide median (≈ 0: a dead head).

Absolute guards catch gross collapse; with a baseline version of the same architecture, the layer's
mean similarity must not rise by more than a calibrated margin. Healthy trained models have highly
similar head pairs (all-MiniLM-L6-v2: up to 0.975), so the defaults come from measurements on the real
model (docs/validators.md). One heatmap PNG per layer is written to ``workdir``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.errors import InputError
from controlplane.models.hf import Architecture
from validators.corpus import PROBE
from validators.result import CheckResult, ModelUnderTest, Status
from validators.settings import HeadCollapseSettings, Settings

NAME = "head-collapse"
NOT_INSPECTABLE = "not-inspectable"
NOT_INSPECTABLE_POLICIES = {"warn": Status.WARNING, "fail": Status.FAILED}


@dataclass
class HeadStats:
    similarity: np.ndarray  # [layers, heads, heads] cosine between heads' attention maps
    entropy: np.ndarray  # [layers, heads] normalized attention entropy
    output_norm: np.ndarray | None  # [layers, heads] context norm / model-wide median

    def to_dict(self) -> dict[str, Any]:
        return {
            "similarity": np.round(self.similarity, 4).tolist(),
            "entropy": np.round(self.entropy, 4).tolist(),
            "output_norm": None if self.output_norm is None else np.round(self.output_norm, 4).tolist(),
        }


def _architecture(model: ModelUnderTest) -> Architecture:
    from validators.model_arch import architecture

    return architecture(model)


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def probe_inputs(model: ModelUnderTest, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    from controlplane.models.encoder import load_tokenizer, tokenize
    from validators.tokenizer_parity import tokenizer_file

    tok = load_tokenizer(tokenizer_file(model.model_dir, model.ref), max_length=max_tokens)
    return tokenize(tok, list(PROBE))


def attention_stats(
    model: ModelUnderTest, arch: Architecture, ids: np.ndarray, mask: np.ndarray, device: str = "cpu"
) -> HeadStats:
    import onnxruntime as ort

    from controlplane.models.onnx_graph import attention_graph

    data, probs, contexts = attention_graph(model.onnx_path, arch.layers)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=_providers(device))
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in {i.name for i in session.get_inputs()}:
            feeds["token_type_ids"] = np.zeros_like(ids)
        outputs = session.run(probs + contexts, feeds)
    except Exception as exc:  # onnxruntime's own exception types: the graph cannot run on these inputs
        raise InputError(
            f"{model.ref}: onnxruntime cannot run the attention graph ({' '.join(str(exc).split())[:200]})"
        ) from None
    valid = mask.astype(np.float32)  # [B, N]
    lengths = valid.sum(axis=1)
    sims, ents, norms = [], [], []
    for layer in range(arch.layers):
        p = outputs[layer].astype(np.float32) * valid[:, None, :, None] * valid[:, None, None, :]
        if p.ndim != 4 or p.shape[1] != arch.heads:
            raise InputError(
                f"{model.ref}: attention output of layer {layer} has shape {p.shape}, expected [batch, {arch.heads}, seq, seq]"
            )
        flat = p.transpose(1, 0, 2, 3).reshape(arch.heads, -1)
        flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
        sims.append(flat @ flat.T)
        ent = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(-1) / np.log(np.maximum(lengths, 2))[:, None, None]
        ents.append((ent * valid[:, None, :]).sum(axis=(0, 2)) / valid.sum())
        if contexts:
            ctx = outputs[arch.layers + layer].astype(np.float32)  # [B, H, N, d]
            norms.append((np.linalg.norm(ctx, axis=-1) * valid[:, None, :]).sum(axis=(0, 2)) / valid.sum())
    output_norm = None
    if norms:
        raw = np.array(norms)
        output_norm = raw / max(float(np.median(raw)), 1e-12)
    return HeadStats(np.clip(np.array(sims), -1.0, 1.0), np.array(ents), output_norm)


def _duplicate_groups(sim: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups (size ≥ 2) of heads connected by a similarity at or above ``threshold``."""
    n = sim.shape[0]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if sim[i, j] >= threshold:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)


def judge(stats: HeadStats, base: HeadStats | None, cfg: HeadCollapseSettings) -> tuple[Status, dict[str, float], list[str]]:
    layers, heads = stats.entropy.shape
    iu = np.triu_indices(heads, 1)
    metrics: dict[str, float] = {}
    fails: list[str] = []
    warns: list[str] = []
    dup_pairs = uniform_total = dead_total = 0
    for layer in range(layers):
        pairs = stats.similarity[layer][iu]
        mean, top = float(pairs.mean()), float(pairs.max())
        metrics[f"layer{layer}.mean_similarity"] = mean
        metrics[f"layer{layer}.max_similarity"] = top
        metrics[f"layer{layer}.pairs_above_0.9"] = float((pairs > 0.9).sum())
        groups = _duplicate_groups(stats.similarity[layer], cfg.identical_cosine)
        dup_pairs += int((pairs >= cfg.identical_cosine).sum())
        if groups and len(groups[0]) > cfg.max_duplicate_group:
            fails.append(
                f"layer {layer}: {len(groups[0])} of {heads} heads have identical attention "
                f"(cosine ≥ {cfg.identical_cosine}): heads {groups[0]}"
            )
        elif groups:
            warns.append(f"layer {layer}: duplicate heads {', '.join(map(str, groups))} (cosine ≥ {cfg.identical_cosine})")
        if mean >= cfg.max_layer_mean_similarity:
            fails.append(f"layer {layer}: mean similarity between heads {mean:.3f} ≥ {cfg.max_layer_mean_similarity}")
        uniform = [h for h in range(heads) if stats.entropy[layer, h] >= cfg.uniform_entropy]
        uniform_total += len(uniform)
        if uniform and len(uniform) >= cfg.max_uniform_fraction * heads:
            fails.append(
                f"layer {layer}: {len(uniform)} of {heads} heads attend uniformly "
                f"(entropy ≥ {cfg.uniform_entropy}): heads {uniform}"
            )
        elif uniform:
            warns.append(f"layer {layer}: uniform heads {uniform} (entropy ≥ {cfg.uniform_entropy})")
        if stats.output_norm is not None:
            dead = [h for h in range(heads) if stats.output_norm[layer, h] < cfg.dead_head_ratio]
            dead_total += len(dead)
            if dead and len(dead) >= cfg.max_dead_fraction * heads:
                fails.append(
                    f"layer {layer}: {len(dead)} of {heads} heads are dead "
                    f"(output < {cfg.dead_head_ratio} x median): heads {dead}"
                )
            elif dead:
                warns.append(f"layer {layer}: dead heads {dead} (output < {cfg.dead_head_ratio} x median)")
    metrics.update(
        max_similarity=float(max(stats.similarity[la][iu].max() for la in range(layers))),
        duplicate_pairs=float(dup_pairs),
        uniform_heads=float(uniform_total),
        dead_heads=float(dead_total),
        min_entropy=float(stats.entropy.min()),
        max_entropy=float(stats.entropy.max()),
    )
    if stats.output_norm is not None:
        metrics["min_output_norm"] = float(stats.output_norm.min())
    if base is not None:
        increase = [float(stats.similarity[la][iu].mean() - base.similarity[la][iu].mean()) for la in range(layers)]
        shift = np.abs(stats.entropy - base.entropy)
        metrics["max_mean_similarity_increase"] = max(increase)
        metrics["max_entropy_shift"] = float(shift.max())
        for layer, inc in enumerate(increase):
            if inc > cfg.max_mean_similarity_increase:
                fails.append(
                    f"layer {layer}: mean similarity between heads rose by {inc:+.3f} against the baseline "
                    f"({base.similarity[layer][iu].mean():.3f} → {stats.similarity[layer][iu].mean():.3f}; "
                    f"limit {cfg.max_mean_similarity_increase:+.2f})"
                )
        moved = np.argwhere(shift > cfg.max_entropy_shift)
        if len(moved):
            shown = ", ".join(f"L{la}H{h} {base.entropy[la, h]:.2f}→{stats.entropy[la, h]:.2f}" for la, h in moved[:6])
            warns.append(f"{len(moved)} heads changed attention entropy by more than {cfg.max_entropy_shift}: {shown}")
    status = Status.FAILED if fails else Status.WARNING if warns else Status.PASSED
    return status, metrics, fails + warns


def _import_pyplot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


def preload_pyplot() -> threading.Thread:
    """Import matplotlib in a thread while the probe's forward passes run (onnxruntime releases
    the GIL): the import is most of the heatmaps' first-call cost. ``heatmaps`` joins it."""
    thread = threading.Thread(target=_import_pyplot, name="import-pyplot", daemon=True)
    thread.start()
    return thread


def heatmaps(
    stats: HeadStats, base: HeadStats | None, workdir: Path, ref: str, base_ref: str | None, identical: float,
    preload: threading.Thread | None = None,
) -> list[Path]:
    """One PNG per layer: the head-pair cosine matrix (beside the baseline's), duplicate pairs marked x.

    No per-cell labels: 144 text artists per panel made rendering 3x slower than the check itself
    (the numbers are in head-collapse-stats.json)."""
    if preload is not None:
        preload.join()
    _import_pyplot()
    import matplotlib.pyplot as plt

    workdir.mkdir(parents=True, exist_ok=True)
    heads = stats.entropy.shape[1]
    iu = np.triu_indices(heads, 1)
    off_diagonal = ~np.eye(heads, dtype=bool)
    panels = [(ref, stats)] + ([(base_ref or "baseline", base)] if base is not None else [])
    # one figure, redrawn per layer (building a figure and its colorbar is most of the cost)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.9), squeeze=False)
    images, marks = [], []
    for ax in axes[0]:
        images.append(ax.imshow(np.zeros((heads, heads)), vmin=0.0, vmax=1.0, cmap="viridis"))
        marks.append(ax.scatter([], [], marker="x", s=18, c="red", linewidths=1))
        ax.set_xticks(range(0, heads, max(1, heads // 6)))
        ax.set_yticks(range(0, heads, max(1, heads // 6)))
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("head", fontsize=8)
    fig.colorbar(images[0], ax=axes[0].tolist(), shrink=0.8, label="cosine of attention maps")
    paths = []
    try:
        for layer in range(stats.entropy.shape[0]):
            for ax, image, mark, (label, st) in zip(axes[0], images, marks, panels, strict=True):
                assert st is not None
                sim = st.similarity[layer]
                image.set_data(sim)
                dup = np.argwhere((sim >= identical) & off_diagonal)
                mark.set_offsets(dup[:, ::-1] if len(dup) else np.empty((0, 2)))
                ax.set_title(f"{label} L{layer}: mean {sim[iu].mean():.3f}, max {sim[iu].max():.3f}", fontsize=8)
            path = workdir / f"head-collapse-layer{layer}.png"
            fig.savefig(path, dpi=80)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def check(
    candidate: ModelUnderTest, reference: ModelUnderTest | None, settings: Settings, *, device: str = "cpu", workdir: Path
) -> CheckResult:
    from controlplane.models.onnx_graph import NotInspectable

    cfg = settings.head_collapse
    if cfg.not_inspectable not in NOT_INSPECTABLE_POLICIES:
        raise InputError(f"head_collapse.not_inspectable must be one of {', '.join(NOT_INSPECTABLE_POLICIES)}, "
                         f"got {cfg.not_inspectable!r}")
    arch = _architecture(candidate)
    ids, mask = probe_inputs(candidate, min(cfg.max_probe_tokens, arch.max_positions))
    try:
        stats = attention_stats(candidate, arch, ids, mask, device)
    except NotInspectable as exc:
        return not_inspectable(candidate, exc, cfg)
    pyplot = preload_pyplot()
    base = None
    if reference is not None:
        ref_arch = _architecture(reference)
        if not arch.same_shape(ref_arch):
            raise InputError(
                f"baseline {reference.ref} ({ref_arch.describe()}) has a different architecture from "
                f"{candidate.ref} ({arch.describe()}): heads cannot be compared"
            )
        if ref_arch.vocab_size != arch.vocab_size:  # ids of one vocabulary mean nothing to the other
            r_ids, r_mask = probe_inputs(reference, min(cfg.max_probe_tokens, ref_arch.max_positions))
        else:
            r_ids, r_mask = ids, mask
        base = attention_stats(reference, ref_arch, r_ids, r_mask, device)
    status, metrics, findings = judge(stats, base, cfg)
    if status is Status.PASSED:
        findings.insert(
            0,
            f"{arch.layers}x{arch.heads} heads: max pair similarity {metrics['max_similarity']:.3f}, "
            f"entropy {metrics['min_entropy']:.2f}-{metrics['max_entropy']:.2f}",
        )
    artifacts = heatmaps(stats, base, workdir, candidate.ref, reference.ref if reference else None, cfg.identical_cosine,
                         preload=pyplot)
    stats_file = workdir / "head-collapse-stats.json"
    stats_file.write_text(json.dumps({"candidate": stats.to_dict(), "baseline": base.to_dict() if base else None}))
    thresholds = {k: float(v) for k, v in vars(cfg).items() if isinstance(v, int | float)}
    details = {
        "probe_texts": len(PROBE),
        "probe_tokens": int(mask.sum()),
        "baseline": reference.ref if reference else None,
        "layers": arch.layers,
        "heads": arch.heads,
        "providers": _providers(device),  # onnxruntime without CUDA runs the probe on the CPU
    }
    return CheckResult(NAME, status, metrics, thresholds, findings, [*artifacts, stats_file], details)


def not_inspectable(candidate: ModelUnderTest, exc: Any, cfg: HeadCollapseSettings) -> CheckResult:
    """The verdict on a graph with fused attention: never a pass; a warning or a failure by policy."""
    status = NOT_INSPECTABLE_POLICIES[cfg.not_inspectable]
    verdict = "accepted as a warning" if status is Status.WARNING else "refused"
    finding = (f"{NOT_INSPECTABLE}: {exc} ({verdict} by head_collapse.not_inspectable={cfg.not_inspectable!r}; "
               "heads were not checked)")
    details = {"inspection": NOT_INSPECTABLE, "fused_ops": exc.fused, "policy": cfg.not_inspectable}
    return CheckResult(NAME, status, {"inspectable": 0.0}, {}, [finding], [], details)
