"""`TrainConfig`: every knob of a training run, typed, with the reason for each default."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from digitlab.errors import DigitlabError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """One training run. JSON-able (`to_dict` / `from_dict`); stored in model.json and train_state.json."""

    # data
    dataset: str = "mnist"  # a registry name or a folder of four IDX files
    data_dir: str | None = None  # explicit folder; None lets digitlab.data search its sources
    validation_size: int = 5000  # the first 5,000 training images, as TensorFlow 1's input_data did
    train_size: int | None = None  # keep only the first N remaining training images (tests, smoke runs)
    # model
    model: str = "cnn"  # the fast default; see digitlab.models.MODELS
    model_config: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_model
    # optimisation
    epochs: int = 10
    max_steps: int | None = None  # stop after this many steps, even mid-epoch (the TF tutorials count steps)
    batch_size: int = 128  # global batch; split evenly across DDP ranks
    drop_last: bool = False  # keep every image of the epoch, as the tutorials do
    optimizer: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.01  # peak learning rate for "onecycle"
    momentum: float = 0.9  # SGD momentum; the usual value
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW: the paper's values
    rho: float = 0.9  # RMSprop's decay (Keras' default; torch's `alpha` is 0.99) and Adadelta's
    eps: float = 1e-8  # Adam's paper value; Keras' RMSprop uses 1e-7
    weight_decay: float = 0.0  # applied to weights only, never to biases or BatchNorm parameters
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated and saved instead of the
    # raw weights (0 = off); a smoother, slightly better model, most of all mid-run at a high learning rate
    # learning-rate schedule, evaluated per step
    schedule: str = "constant"  # one of SCHEDULES
    step_size: int = 1  # "step": epochs between decays (pytorch/examples: every epoch)
    gamma: float = 0.7  # "step": decay factor (pytorch/examples' value)
    min_lr: float = 0.0  # "cosine": final learning rate
    warmup_steps: int = 0  # "constant"/"cosine": linear warm-up from 0 over this many steps
    pct_start: float = 0.25  # "onecycle": fraction of steps spent rising to `lr`
    div_factor: float = 25.0  # "onecycle": start at lr / div_factor (torch's OneCycleLR default)
    final_div_factor: float = 1e4  # "onecycle": end at start / final_div_factor (torch's default)
    # augmentation: one random affine warp per image, batched on the device
    augment: bool = False  # off for the tutorials' recipes, which had none
    aug_shift: float = 2.0  # max shift in pixels; MNIST digits sit within ~4 px of centre
    aug_rotate: float = 10.0  # max rotation in degrees; beyond ~15 a 6 starts to look like a 9
    aug_scale: float = 0.1  # max relative zoom in or out
    aug_flip: bool = False  # random left-right mirror: right for clothes, wrong for digits
    aug_elastic: float = 0.0  # smooth random bending, max pixels: other hands; beyond ~2 px digits break
    aug_stroke: float = 0.0  # share of images with thicker or thinner strokes: other pens
    aug_blur: float = 0.0  # share of images blurred: defocused photos, soft scans
    aug_lowres: float = 0.0  # share of images down-up sampled: low-resolution scans and photos
    aug_start: float = 0.0  # share of the steps trained before those four join (the first 99% comes sooner)
    # outlier exposure (Hendrycks, Mazeika, Dietterich 2019): non-digits in each batch, pushed to uniform
    oe_weight: float = 0.0  # weight of the outliers' loss; 0 = off (the paper uses 0.5)
    oe_fraction: float = 0.25  # outliers per step, as a share of the batch size
    oe_start: float = 0.0  # share of the steps trained before outliers join (the paper fine-tunes at the end)
    oe_synth: int = 1500  # digitlab.synth non-digits (split "train") through the preprocessing; cached
    oe_datasets: list[str] = field(default_factory=list)  # other datasets' training images, e.g. fashion-mnist
    oe_pairs: int = 0  # pairs of touching training digits as one picture (what `read` must split, not read as one)
    photo_digits: int = 0  # per synth digit condition: pictures (photos, canvases, print) of training digits...
    photo_fraction: float = 0.125  # ...joined to each batch from oe_start, this share of it, with their labels
    # the "not a digit" threshold and its report (end of `train`)
    reject_keep: float = 0.99  # the threshold keeps this share of the validation images...
    reject_keep_pictures: float = 0.98  # ...and of realistic pictures of validation digits (<= 2% rejected)
    reject_fit_samples: int = 0  # per digit condition: realistic pictures of validation digits for the threshold
    reject_eval_samples: int = 0  # per condition: synth pictures for report.json's rejection figures (0: none)
    # evaluation and stopping
    patience: int | None = None  # early stopping: epochs without val_loss improving; None = off
    track_test: bool = False  # also measure test accuracy while training (time-to-accuracy only)
    eval_every_steps: int | None = None  # also evaluate every N steps (time-to-accuracy benchmarks)
    eval_batch_size: int = 1000  # evaluation has no gradients, so larger batches are cheap
    # reproducibility and hardware
    seed: int = 0
    device: str = "auto"  # "auto": CUDA, then Apple MPS, then CPU; or e.g. "cpu", "cuda:1"
    precision: str = "auto"  # "auto": bf16 autocast on CUDA when supported (else fp16), fp32 elsewhere
    channels_last: bool = True  # 1.5-2x faster convolutions on CPU (oneDNN) and tensor cores
    compile: bool = False  # torch.compile: its start-up cost does not pay off on short CPU runs
    threads: int | None = None  # torch.set_num_threads while training; None: torch's default (all cores).
    # On a CPU shared with other busy processes 1 can be ~5x faster: idle OpenMP threads spin.
    progress_every: int = 10  # steps between progress callbacks (each one syncs the device)
    save_every_epoch: bool = True  # checkpoint + resume state at each epoch end, so a kill loses <= 1 epoch

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.model_config = dict(self.model_config)
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule={self.schedule!r}: use one of {', '.join(SCHEDULES)}"),
            (self.precision in PRECISIONS, f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}"),
            (self.epochs >= 1, f"epochs={self.epochs}: train for at least 1 epoch"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps}: use 1 or more, or None"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}: use 1 or more"),
            (self.lr > 0, f"lr={self.lr}: the learning rate must be positive"),
            (self.validation_size >= 0, f"validation_size={self.validation_size}: use 0 or more"),
            (0 <= self.label_smoothing < 1, f"label_smoothing={self.label_smoothing}: use a value in [0, 1)"),
            (0 <= self.ema < 1, f"ema={self.ema}: use a decay in [0, 1), e.g. 0.999, or 0 for none"),
            (0 < self.pct_start < 1, f"pct_start={self.pct_start}: use a value in (0, 1)"),
            (self.patience is None or self.patience >= 1, f"patience={self.patience}: use 1 or more, or None"),
            (all(0 <= v <= 1 for v in (self.aug_stroke, self.aug_blur, self.aug_lowres, self.aug_start,
                                       self.oe_start)),
             "aug_stroke, aug_blur, aug_lowres, aug_start and oe_start are shares: use values in [0, 1]"),
            (self.aug_elastic >= 0 and self.oe_weight >= 0 and self.oe_pairs >= 0,
             "aug_elastic, oe_weight and oe_pairs: use 0 or more"),
            (0 < self.oe_fraction <= 4, f"oe_fraction={self.oe_fraction}: use a share in (0, 4]"),
            (all(0.5 <= v < 1 for v in (self.reject_keep, self.reject_keep_pictures)),
             "reject_keep and reject_keep_pictures: use shares in [0.5, 1)"),
            (min(self.oe_synth, self.photo_digits, self.reject_fit_samples, self.reject_eval_samples) >= 0,
             "oe_synth, photo_digits, reject_fit_samples and reject_eval_samples: use 0 or more"),
            (0 < self.photo_fraction <= 4, f"photo_fraction={self.photo_fraction}: use a share in (0, 4]"),
            (self.eval_every_steps is None or self.eval_every_steps >= 1,
             f"eval_every_steps={self.eval_every_steps}: use 1 or more, or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise DigitlabError(f"training config: {message}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
        """A config from `d` (what `to_dict` wrote, or some of its keys on top of `base`).

        Unknown keys and values of the wrong type are an error naming the key.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            hints = "; ".join(f"{k!r}{did_you_mean(k, known)}" for k in unknown)
            raise DigitlabError(f"training config: unknown keys {hints}; known keys are {sorted(known)}")
        merged = {**(base.to_dict() if base is not None else {}), **d}
        try:
            return _ADAPTER.validate_python(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise DigitlabError(f"training config: {where}={err.get('input')!r}: {err.get('msg')}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (and validated)."""
        return TrainConfig.from_dict(changes, base=self)

    def to_toml(self) -> str:
        """The config as TOML (None values left out: each such field's default is None)."""
        import tomli_w

        return tomli_w.dumps({k: v for k, v in self.to_dict().items() if v is not None})

    @classmethod
    def from_toml(cls, text: str, *, name: str = "config", base: TrainConfig | None = None) -> TrainConfig:
        """A config from TOML text (every key optional, on top of `base`); `name` names it in errors."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DigitlabError(f"{name}: not valid TOML ({exc}); see `digitlab train --print-config`") from None
        try:
            return cls.from_dict(data, base=base)
        except DigitlabError as exc:
            raise DigitlabError(f"{name}: {exc}") from None

    def with_settings(self, settings: list[str]) -> TrainConfig:
        """A copy with `key=value` settings applied; each value is read as TOML (3, 0.1, true, [32, 64], "adamw")
        and, when that fails, as a plain string."""
        changes: dict[str, Any] = {}
        for item in settings:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise DigitlabError(f"--set {item!r}: write it as KEY=VALUE, e.g. --set weight_decay=0.01")
            try:
                changes[key] = tomllib.loads(f"value = {raw.strip()}")["value"]
            except tomllib.TOMLDecodeError:
                changes[key] = raw.strip()
        return TrainConfig.from_dict(changes, base=self)


_ADAPTER: TypeAdapter[TrainConfig] = TypeAdapter(TrainConfig)
