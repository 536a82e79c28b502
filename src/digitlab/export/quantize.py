"""int8 ONNX export: static post-training quantization with ONNX Runtime, kept only if it is accurate.

`export_int8` exports the checkpoint to ONNX (BatchNorm folded, see `digitlab.models.fuse`),
calibrates activation ranges on training images, quantizes convolutions and linear layers to
int8 (QDQ format, per-channel weights, uint8 activations: the x86 VNNI kernels' format), then
compares int8 and float accuracy on the validation images. The file is written only when the
drop is at most `max_drop`; `Predictor(backend="auto")` prefers it when it is there.

Convolutions that read the one-channel image stay float: with 1 input channel their matrix
product is 9-25 wide, too narrow for int8 kernels (measured: int8 made that layer the slowest
in the network).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.checkpoints import Checkpoint
from digitlab.errors import DigitlabError
from digitlab.export.onnx import INPUT_NAME, OUTPUT_NAME, onnx_bytes
from digitlab.layout import INT8_ONNX, RunFiles, to_model_input

if TYPE_CHECKING:
    from digitlab.data import Dataset
    from digitlab.export.sessions import Session

CALIBRATION_IMAGES = 1000  # training images from the end of the training split
CHECK_IMAGES = 5000  # validation images (the start of the training split) for the accuracy check
MAX_ACCURACY_DROP = 0.001  # keep int8 only if it loses at most 0.1 percentage points
SPEED_BATCH = 256  # the batch at which int8 and float are timed against each other (require_faster)
SPEED_ROUNDS, SPEED_WINDOW = 4, 0.1  # interleaved windows of that many seconds: ~1 s, the best window counts


@dataclass(frozen=True)
class Int8Export:
    """What `export_int8` did. `path` is None when the int8 model was not kept."""

    path: Path | None
    float_accuracy: float
    int8_accuracy: float
    check_images: int
    calibration_images: int
    max_drop: float
    int8_images_per_second: float | None = None  # measured with require_faster, batch SPEED_BATCH
    float_images_per_second: float | None = None

    @property
    def kept(self) -> bool:
        return self.path is not None

    @property
    def slower(self) -> bool:
        """Timed, and int8 was no faster than float on this machine."""
        int8, flt = self.int8_images_per_second, self.float_images_per_second
        return int8 is not None and flt is not None and int8 <= flt

    def summary(self) -> str:
        drop = (self.float_accuracy - self.int8_accuracy) * 100
        speed = ("" if self.int8_images_per_second is None else
                 f"; {self.int8_images_per_second:,.0f} vs {self.float_images_per_second:,.0f} images/s")
        verdict = (f"-> {self.path}" if self.kept else
                   f"not kept (no faster than float on this CPU{speed})" if self.slower else
                   f"not kept (drop > {self.max_drop * 100:.2g} points)")
        return (f"int8 export: accuracy {self.int8_accuracy:.4f} vs float {self.float_accuracy:.4f} "
                f"({-drop:+.2f} points) on {self.check_images} validation images, calibrated on "
                f"{self.calibration_images} training images {verdict}")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice at WARNING on the root logger; keep it off the user's screen."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _image_input_convs(model: Any) -> list[str]:
    """Names of Conv nodes whose weight has one input channel (they read the image itself)."""
    dims = {init.name: list(init.dims) for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type == "Conv" and len(node.input) > 1
            and len(dims.get(node.input[1], [])) == 4 and dims[node.input[1]][1] == 1]


def quantize_onnx(float_path: str | os.PathLike[str], calibration_uint8: np.ndarray, out_path: str | os.PathLike[str]
                  ) -> Path:
    """Write an int8 (QDQ) version of the float ONNX model at `float_path`, calibrated on uint8 images (N, 28, 28).

    MinMax calibration, per-channel int8 weights, uint8 activations. Convs on the one-channel
    input stay float. The float model's `digitlab.*` metadata is carried over.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_uint8) == 0:
        raise DigitlabError("int8 quantization needs calibration images; got none")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{INPUT_NAME: to_model_input(calibration_uint8[i : i + 250])}
                                  for i in range(0, len(calibration_uint8), 250)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="digitlab-int8-") as tmp, _quiet_root_logger():
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        excluded = _image_input_convs(onnx.load(str(prepared)))
        quantize_static(str(prepared), str(quantized), _Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded)
        proto = onnx.load(str(quantized))
    source = onnx.load(str(float_path), load_external_data=False)
    del proto.metadata_props[:]
    for prop in source.metadata_props:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key="digitlab.quantization", value=json.dumps(
        {"format": "QDQ", "weights": "int8 per-channel", "activations": "uint8", "calibration": "minmax",
         "calibration_images": int(len(calibration_uint8)), "float_nodes": excluded}))
    onnx.checker.check_model(proto)
    return atomic_write_bytes(out_path, proto.SerializeToString())


def _logits_of(session: Session) -> Callable[[np.ndarray], np.ndarray]:
    """Logits (B, C) of uint8 images (B, 28, 28) from an ONNX Runtime session on a digitlab export."""
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: to_model_input(x)})[0]


def _accuracy(logits_of: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Share of `x` whose arg-max class is `y`, in batches of SPEED_BATCH x 4 (bounded memory)."""
    step = SPEED_BATCH * 4
    right = sum(int((logits_of(x[i:i + step]).argmax(1) == y[i:i + step]).sum()) for i in range(0, len(x), step))
    return right / max(1, len(x))


def export_int8(
    checkpoint: Checkpoint | str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    dataset: Dataset | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    check_images: int = CHECK_IMAGES,
    max_drop: float = MAX_ACCURACY_DROP,
    float_onnx: bytes | None = None,
    require_faster: bool = False,
) -> Int8Export:
    """Quantize the checkpoint to int8 ONNX and keep it (at `out_path`, default `RUN/model.int8.onnx`)
    only if its accuracy on the validation images is at most `max_drop` below the float model's.

    `checkpoint`: a loaded `Checkpoint` or a path to one. `dataset`: the checkpoint's dataset if
    already loaded (else loaded through the data layer, `data_dir` as for `load`). Calibration
    uses the last `calibration_images` training images; the check uses the first `check_images`
    (the validation split), both scored by ONNX Runtime (arg-max accuracy). `float_onnx`: the float export
    when the caller already has it (`onnx_bytes`). `require_faster`: also time both on this machine
    (interleaved windows, batch `SPEED_BATCH`) and keep int8 only when it serves more images/s: on
    a CPU without int8 dot-product instructions (AVX2 only) float can be the faster one.
    """
    from digitlab.checkpoints import dataset_of, load_checkpoint
    from digitlab.export.sessions import ort_session

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    run_dir = Path(ckpt.run_dir)
    out = Path(out_path) if out_path is not None else RunFiles(run_dir).int8_onnx
    ds = dataset if dataset is not None else dataset_of(ckpt.meta, data_dir=data_dir, run_dir=run_dir)
    n = len(ds.x_train)
    if n < 2:
        raise DigitlabError(f"dataset {ds.name!r} has {n} training images; int8 calibration needs more")
    n_cal = max(1, min(int(calibration_images), n // 2))
    n_check = max(1, min(int(check_images), n - n_cal))
    x_cal = ds.x_train[n - n_cal :]
    x_check, y_check = ds.x_train[:n_check], ds.y_train[:n_check]
    float_bytes = float_onnx if float_onnx is not None else onnx_bytes(ckpt.model, ckpt.meta, run_dir)
    with tempfile.TemporaryDirectory(prefix="digitlab-int8-") as tmp:
        float_path = atomic_write_bytes(Path(tmp) / "model.onnx", float_bytes)
        int8_bytes = quantize_onnx(float_path, x_cal, Path(tmp) / INT8_ONNX).read_bytes()
    predictors = {b: _logits_of(ort_session(m, name=f"the {b} export of {run_dir}"))
                  for b, m in (("onnx", float_bytes), ("int8", int8_bytes))}
    float_acc, int8_acc = (_accuracy(predictors[b], x_check, y_check) for b in ("onnx", "int8"))
    speed: dict[str, float | None] = {"onnx": None, "int8": None}
    if require_faster:
        from digitlab.export.speed import interleaved_images_per_second

        samples = interleaved_images_per_second(predictors, x_check[:SPEED_BATCH * 4], batch_sizes=(SPEED_BATCH,),
                                                rounds=SPEED_ROUNDS, window_seconds=SPEED_WINDOW)
        speed = {b: max(samples[b][SPEED_BATCH]) for b in predictors}
    result = Int8Export(path=None, float_accuracy=float_acc, int8_accuracy=int8_acc, check_images=n_check,
                        calibration_images=n_cal, max_drop=max_drop, int8_images_per_second=speed["int8"],
                        float_images_per_second=speed["onnx"])
    if float_acc - int8_acc > max_drop or result.slower:
        return result
    return replace(result, path=atomic_write_bytes(out, int8_bytes))
