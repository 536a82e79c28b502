"""Export a checkpoint (or the line reader) to ONNX, dynamic batch axis, and check it against PyTorch."""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.errors import DigitlabError
from digitlab.layout import INPUT_CONTRACT, LINE_HEIGHT, SIDE, WEIGHTS, RunFiles, to_model_input

if TYPE_CHECKING:
    import torch

    from digitlab.checkpoints import ModelMeta

OPSET = 17  # the lowest opset with LayerNormalization; ONNX Runtime >= 1.14 runs it
INPUT_NAME = "input"  # layout.INPUT_CONTRACT
OUTPUT_NAME = "logits"  # float32 (N, C)
READER_INPUT, READER_OUTPUT = "lines", "log_probs"  # the line reader's ONNX graph names
SHA_KEY = "digitlab.weights_sha256"  # ONNX metadata: the SHA-256 of the weights an export was made from


def weights_sha256(meta: ModelMeta, run_dir: Path) -> str:
    """SHA-256 of the checkpoint's weights: from `model.json`, or hashed from the file."""
    sha = meta.sha256
    if sha:
        return str(sha)
    import hashlib

    return hashlib.sha256((run_dir / WEIGHTS).read_bytes()).hexdigest()


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `metadata_props` of an ONNX file (digitlab stores the weights' SHA-256 there)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def trim_pooled_borders(proto: Any) -> int:
    """Stop convs from computing output rows/columns that the max-pool after them never reads.

    A 2x2 stride-2 max-pool of a 7x7 map reads rows and columns 0-5 only (floor mode), so the
    conv before it computes 13 of its 49 positions for nothing. For each Conv whose only path
    onward is [Relu ->] MaxPool (no padding, floor mode), the conv's end padding is cut by the
    unread rows/columns (up to the padding it has): the same outputs, a smaller map. Changes
    `proto` (an ONNX ModelProto with a fixed image size) in place; returns the convs changed.
    Measured on the `cnn` recipe's int8 model: 8-19% more images/s.
    """
    import onnx
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    consumers: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def attrs(node: Any) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    changed = 0
    for conv in [n for n in proto.graph.node if n.op_type == "Conv"]:
        nxt = consumers.get(conv.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Relu":
            nxt = consumers.get(nxt[0].output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "MaxPool":
            continue
        pool = attrs(nxt[0])
        shape = shapes.get(conv.output[0], [])
        kernel, strides = list(pool.get("kernel_shape", [])), list(pool.get("strides", [1, 1]))
        if (len(shape) != 4 or not all(shape[2:]) or len(kernel) != 2 or any(pool.get("pads", [0] * 4))
                or pool.get("ceil_mode", 0) or pool.get("dilations", [1, 1]) != [1, 1]
                or pool.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        conv_attrs = attrs(conv)
        pads = list(conv_attrs.get("pads", [0, 0, 0, 0]))
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(pads) != 4:
            continue
        new_pads = list(pads)
        for axis, size in enumerate(shape[2:]):
            out = (size - kernel[axis]) // strides[axis] + 1
            unread = size - ((out - 1) * strides[axis] + kernel[axis])
            stride = conv_attrs.get("strides", [1, 1])[axis]
            if stride == 1:  # each cut pad row removes exactly one output row, the last one
                new_pads[2 + axis] -= min(unread, pads[2 + axis])
        if new_pads != pads:
            for a in conv.attribute:
                if a.name == "pads":
                    a.ints[:] = new_pads
            changed += 1
    return changed


def onnx_bytes(model: Any, meta: ModelMeta, run_dir: Path, *, opset: int = OPSET) -> bytes:
    """The checkpoint's model (a loaded registry model and its `model.json`) serialised as ONNX.

    Input float32 (N, 1, 28, 28) (`layout.INPUT_CONTRACT`), output logits (N, C), dynamic
    batch axis. The graph computes the checkpoint's logits (up to float rounding) with less
    work: BatchNorm folded (`models.fuse`), an NHWC-order head, convs trimmed to what their
    pools read (`trim_pooled_borders`). The metadata records the weights' SHA-256, class names
    and model name, so a stale export (weights retrained since) is detected.
    """
    import onnx
    import torch

    from digitlab.models.fuse import flatten_channels_last, fuse_for_inference

    example = torch.zeros(2, 1, SIDE, SIDE)  # (N, 1, 28, 28); 2 so no size-1 batch gets specialised
    # same logits, fewer passes over memory: BatchNorm folded into the convs, an NHWC-order head
    fused = flatten_channels_last(fuse_for_inference(model), example)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation notices: not the user's business
        try:
            torch.onnx.export(
                fused,
                (example,),
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to any binary file object
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                dynamo=False,  # the TorchScript exporter: one self-contained file, no onnxscript rewrite
            )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise DigitlabError(
                f"checkpoint {run_dir}: ONNX export of model {meta.model.name!r} failed: {exc}"
            ) from exc
    proto = onnx.load_from_string(buf.getvalue())
    trim_pooled_borders(proto)
    props = {
        SHA_KEY: weights_sha256(meta, run_dir),
        "digitlab.model": json.dumps(meta.model.model_dump(mode="json")),
        "digitlab.class_names": json.dumps(list(meta.class_names or [])),
        "digitlab.input": INPUT_CONTRACT,
    }
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(
    checkpoint_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    opset: int = OPSET,
) -> Path:
    """Write the checkpoint's model as ONNX (`onnx_bytes`) to `out_path` (default `RUN/model.onnx`), atomically."""
    from digitlab.checkpoints import load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    run_dir = Path(ckpt.run_dir)
    out = Path(out_path) if out_path is not None else RunFiles(run_dir).onnx
    return atomic_write_bytes(out, onnx_bytes(ckpt.model, ckpt.meta, run_dir, opset=opset))


def compare_onnx(
    checkpoint_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    x_uint8: np.ndarray,
) -> float:
    """Max absolute difference between PyTorch's and ONNX Runtime's logits on images (N, 28, 28)."""
    import onnxruntime as ort

    from digitlab.checkpoints import load_checkpoint
    from digitlab.models.runner import predict_logits

    ckpt = load_checkpoint(checkpoint_path)
    want = predict_logits(ckpt.model, x_uint8)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: to_model_input(np.asarray(x_uint8))})[0]
    return float(np.max(np.abs(got - want)))


def reader_onnx_bytes(model: torch.nn.Module) -> bytes:
    """A LineReader as ONNX (BatchNorm folded): input "lines" float32 (N, 1, 32, W), output "log_probs"
    (T, N, C), N and W dynamic. Raises DigitlabError when the exporter fails."""
    import torch

    from digitlab.models.fuse import fuse_for_inference

    fused = fuse_for_inference(model)
    example = torch.zeros(2, 1, LINE_HEIGHT, 64)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter and tracer notices: not the user's business
        try:
            axes = {READER_INPUT: {0: "lines", 3: "width"}, READER_OUTPUT: {0: "frames", 1: "lines"}}
            torch.onnx.export(fused, (example,), buf, input_names=[READER_INPUT],  # type: ignore[arg-type]
                              output_names=[READER_OUTPUT], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise DigitlabError(f"ONNX export of the line reader failed: {exc}") from exc
    return buf.getvalue()
