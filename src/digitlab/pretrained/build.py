"""Make a bundled default model from a finished run: `python -m digitlab.pretrained.build RUN --dataset mnist`.

Copies the run's inference files into `digitlab/pretrained/<dataset>/` and writes its model card
from the run's own records (`model.json`, `report.json`, `metrics.jsonl`) and, when given, the
realistic-set results of `python -m benchmarks.realistic`. `make default-model` trains the
recipes and calls this; nothing here trains.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from digitlab._io import atomic_write_bytes, atomic_write_text
from digitlab.errors import DigitlabError
from digitlab.layout import RunFiles
from digitlab.pretrained import BUNDLED, HERE

MAX_BYTES = {"mnist": 1 << 20, "fashion-mnist": 2 << 20}  # the budgets: under 1 MB, under 2 MB


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DigitlabError(f"{path}: cannot be read as JSON ({exc}); is this a finished run directory?") from None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _calibration_lines(report: dict[str, Any]) -> list[str]:
    cal = report.get("calibration")
    if not cal:
        return ["Not calibrated (temperature 1)."]
    return [f"Temperature scaling (Guo et al. 2017) fitted on the validation split: T = {cal['temperature']:.3f}.",
            f"Expected calibration error on the test set (15 bins): {cal['ece_before']:.4f} before, "
            f"**{cal['ece_after']:.4f}** after; negative log-likelihood {cal['nll_before']:.4f} -> "
            f"{cal['nll_after']:.4f}."]


def _rejection_lines(meta: dict[str, Any], report: dict[str, Any]) -> list[str]:
    rej, ood = meta.get("rejection"), report.get("rejection") or {}
    if not rej:
        return ["No learned not-a-digit detector: only blank and several-object checks."]
    keep = rej.get("keep") or {}
    pictures = f" and {_pct(keep['realistic'])} of realistic pictures of them" if keep.get("realistic") else ""
    lines = [f"Method: {rej.get('method', '?')} score of the calibrated logits (Liu et al. 2020) after outlier "
             f"exposure in training; threshold {rej.get('threshold'):.4f}, chosen to keep "
             f"{_pct(keep.get('validation'))} of validation images{pictures}. Test images rejected: "
             f"{_pct(ood.get('test_rejected'))}.", ""]
    other, held, real = ood.get("other_dataset"), ood.get("heldout_nondigits"), ood.get("realistic_digits")
    if other:
        lines.append(f"- {other['dataset']} test ({other['n']} images) against {meta.get('dataset')} test: AUROC "
                     f"{other['auroc']:.4f}, "
                     f"false accepts at 95% true accepts {_pct(other['false_accept_at_95'])}, rejected "
                     f"{_pct(other['rejected'])}.")
    if held:
        by = ", ".join(f"{k.removeprefix('nondigit_')} {_pct(v)}" for k, v in held["rejected"].items() if k != "all")
        lines.append(f"- held-out non-digits ({held['n']} pictures never trained on): AUROC {held['auroc']:.4f}, "
                     f"false accepts at 95% true accepts {_pct(held['false_accept_at_95'])}, rejected "
                     f"**{_pct(held['rejected']['all'])}** ({by}).")
    if real:
        lines.append(f"- realistic pictures of test digits ({real['n']}): kept {_pct(real['kept']['all'])}, accuracy "
                     f"on the kept {_pct(real.get('accuracy_kept'))}.")
    return lines


def _realistic_lines(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return ["Not measured for this card (run `python -m benchmarks.realistic`)."]
    lines = [f"`{results.get('meta', {}).get('command', 'python -m benchmarks.realistic')}` "
             "(numbers: the share read exactly, every digit right; non-digits: the share rejected).", "",
             "| condition | kind | pictures | accuracy | rejected |", "|---|---|---:|---:|---:|"]
    for row in results.get("conditions", []):
        lines.append(f"| {row['condition']} | {row.get('kind')} | {row.get('n')} | {_pct(row.get('accuracy'))} | "
                     f"{_pct(row.get('rejected'))} |")
    return lines


_DIGIT_LIMITS = [
    "- One character per image for `predict`; `read` finds several digits, left to right, lines top to bottom.",
    "- Trained on isolated, upright handwriting: strongly slanted or stylised digits (7 with a bar, 1 with a long "
    "flag) and rotations beyond about 15 degrees are read less reliably.",
    "- The realistic sets are synthetic; real photos vary more (motion blur, glare, coloured or patterned paper).",
]
_FASHION_LIMITS = [
    "- Fashion-MNIST's 28x28 greyscale product photos on a plain background: one centred article per image. Photos "
    "of clothes worn or on a busy background are far from it and are read unreliably.",
    "- Shirts, T-shirts, pullovers and coats are the classes it confuses most (see the confusion matrix).",
]


def model_card(run_dir: Path, dataset: str, realistic: dict[str, Any] | None = None) -> str:
    """The MODEL_CARD.md text for the run at `run_dir`, from its own records."""
    files = RunFiles(run_dir)
    meta, report = _json(files.model_json), _json(files.report)
    training = meta.get("training", {})
    metrics = meta.get("metrics", {})
    macro = report.get("macro", {})
    lines = [
        f"# digitlab default model: {dataset}",
        "",
        f"`{meta['model']['name']}` model `{meta['model']['name']}-{meta['weights']['sha256'][:12]}`, "
        f"{meta['num_classes']} classes ({', '.join(meta.get('class_names') or [])}).",
        "",
        "## Data",
        f"Trained on the {dataset} training split (the first {training.get('validation_size')} training images held "
        "out for validation, calibration and the rejection threshold); evaluated on its 10,000 test images. "
        "Input: a 28x28 greyscale image, bright ink on black, made from any picture by digitlab's preprocessing.",
        "",
        "## Recipe",
        f"`digitlab train` with model config `{json.dumps(meta['model']['config'])}`, optimizer "
        f"{training.get('optimizer')} at lr {training.get('lr')}, schedule {training.get('schedule')}, batch "
        f"{training.get('batch_size')}, {training.get('epochs')} epochs, label smoothing "
        f"{training.get('label_smoothing')}, augmentation {'on' if training.get('augment') else 'off'}. "
        f"Training time: {metrics.get('elapsed', 0.0):.1f} s on the machine that made it "
        f"(torch {meta.get('versions', {}).get('torch')}). The full config is in `model.json` under `training`.",
        "",
        "## Test metrics",
        f"Accuracy **{_pct(report.get('accuracy'))}** on {report.get('n')} test images; macro precision "
        f"{_pct(macro.get('precision'))}, recall {_pct(macro.get('recall'))}, F1 {_pct(macro.get('f1'))}.",
        "",
        "## Calibration",
        *_calibration_lines(report),
        "",
        "## Not a digit" if dataset == "mnist" else "## Not a piece of clothing",
        *_rejection_lines(meta, report),
        "",
        *(["## Realistic images (made by `digitlab.synth` from MNIST test digits, fonts and drawn shapes)",
           *_realistic_lines(realistic), ""] if dataset == "mnist" else []),
        "## Known limits",
        *(_DIGIT_LIMITS if dataset == "mnist" else _FASHION_LIMITS),
        "- Regenerate with `make default-model`; the weights' SHA-256 is in `model.json` and checked at load.",
        "",
    ]
    return "\n".join(lines)


def install(run_dir: str | Path, dataset: str, *, realistic: Path | None = None) -> Path:
    """Copy the run's inference files and a model card into the package; returns the folder."""
    if dataset not in BUNDLED:
        raise DigitlabError(f"--dataset {dataset!r}: bundled models exist for {', '.join(BUNDLED)}")
    run = Path(run_dir)
    files = RunFiles(run)
    wanted = [files.model_json, files.weights, files.int8_onnx]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing or not files.report.is_file():
        raise DigitlabError(f"{run}: missing {missing or ['report.json']}; give a run finished by `digitlab train`")
    size = sum(p.stat().st_size for p in wanted)
    if size > MAX_BYTES[dataset]:
        raise DigitlabError(f"{run}: the model files are {size / 2**20:.2f} MiB, over the "
                            f"{MAX_BYTES[dataset] / 2**20:.0f} MiB a bundled {dataset} model may take")
    results = _json(realistic) if realistic is not None else None
    card = model_card(run, dataset, results)  # before any file is replaced: a failure leaves the old model whole
    out = HERE / BUNDLED[dataset]
    out.mkdir(parents=True, exist_ok=True)
    for path in wanted:
        atomic_write_bytes(out / path.name, path.read_bytes())
    atomic_write_text(out / "MODEL_CARD.md", card)
    return out


READER_MAX_BYTES = 10 << 20  # the budget for the bundled reader


def _stage(st: dict[str, Any]) -> str:
    """One training stage of a reader, in words."""
    parts = [f"seed {st['seed']}", f"BiLSTM {st['lstm']}" if st.get("lstm") else "conv-only"]
    if st.get("nondigit_p"):
        parts.append(f"marks in {st['nondigit_p']:.0%} of lines")
    if st.get("seconds"):
        parts.append(f"{st['seconds']:.0f} s")
    if st.get("note"):
        parts.append(st["note"])
    return f"{st['steps']:,} steps at peak lr {st['lr']} ({', '.join(parts)})"


def reader_card(folder: Path, realistic: dict[str, Any] | None = None) -> str:
    """The reader's MODEL_CARD.md, from its reader.json (recipe, stages, calibration, figures)."""
    meta = _json(folder / "reader.json")
    metrics = meta.get("metrics") or {}
    cal = meta.get("calibration") or {}
    rows = ["| condition | lines | exact | digit accuracy | marks refused | noise read as nothing |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, m in (metrics.get("conditions") or {}).items():
        rows.append(f"| {name} | {m['lines']} | {_pct(m['exact'])} | {_pct(m['digit_accuracy'])} | "
                    f"{_pct(m['mark_recall'])} | {_pct(m['noise_silent'])} |")
    pages = metrics.get("pages") or {}
    page = pages.get("digit_page") or {}
    noise = ", ".join(f"{k.removeprefix('noise_')} {v['digits_read']}" for k, v in pages.items() if k != "digit_page")
    stages = "; ".join(_stage(st) for st in meta.get("stages") or [])
    lines = [
        "# digitlab line reader",
        "",
        f"`line_reader` ({json.dumps(meta['model']['config'])}): the model behind `digitlab read`, "
        "`Predictor.read`, `/api/read` and the page's number mode. A CNN over a line of writing 32 px high, "
        "read column by column with CTC over blank, the ten digits and \"not a digit\".",
        "",
        "## Data and recipe",
        "Synthetic lines of 1-12 MNIST *training* digits (`digitlab.synth.lines`, style \"train\"): gaps from "
        "wide apart to overlapping by 38%, size, slant, baseline, pen and blur changes, broken strokes, non-digit "
        "marks (letters of printed and handwriting fonts, symbols, doodles, scribbles) labelled \"not a digit\", "
        "specks and ruled-line fragments as noise. Held-out mark kinds and fonts never enter training.",
        f"Recipe `{meta.get('recipe', 'reader')}`: {stages or 'see reader.json'}.",
        "",
        "## Held-out lines (MNIST *test* digits, held-out marks)",
        *rows,
        "",
        f"A page of {page.get('digits', '?')} test digits in {page.get('lines', '?')} lines (1920x3200): "
        f"{page.get('digits_right', '?')} digits right, {page.get('lines_read', '?')} lines read in order, "
        f"{page.get('lines_exact', '?')} exact, {page.get('seconds', '?')} s. Pages without a digit ({noise}): "
        "the digits read on each.",
        "",
        "## Calibration",
        f"Temperature {cal.get('temperature', 1.0):.3f} on each character's peak frame, fitted on "
        f"{cal.get('lines', '?')} held-out lines: ECE {cal.get('ece_before', float('nan')):.4f} -> "
        f"**{cal.get('ece_after', float('nan')):.4f}** ({cal.get('chars', '?')} characters). `read` refuses a "
        f"digit under a calibrated {meta.get('reject_below', 0.0):.2f} as unsure (1% of the right digits read under "
        f"{meta.get('unsure_below', 0.0):.2f}), and a mark read as \"not a digit\" with at least "
        f"{meta.get('mark_sure', 0.0):.2f}; a mark read less surely counts as its likeliest digit. The held-out "
        "figures above are the model's own reading (every mark symbol counted as refused).",
        "",
        *(["## Realistic pictures", *_realistic_lines(realistic), ""] if realistic else []),
        "## Known limits",
        "- Digits shorter than 10 px in the picture are not read (specks); lines are read left to right, so "
        "vertical or upside-down writing is not.",
        "- The lines are synthetic; real handwriting varies more (joined-up numbers, crossed-out digits).",
        "- Regenerate with `make default-model` (`digitlab train --recipe reader`).",
        "",
    ]
    return "\n".join(lines)


def install_reader(folder: str | Path, *, realistic: Path | None = None, out: Path | None = None) -> Path:
    """Copy a calibrated reader (reader.json with "calibration", reader.safetensors) and its card into the package
    (or `out`); returns the folder written."""
    from digitlab.pretrained import READER

    out = out or READER
    src = Path(folder)
    wanted = [src / "reader.json", src / "reader.safetensors"]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing or "calibration" not in _json(wanted[0]):
        raise DigitlabError(f"{src}: missing {missing or ['the calibration in reader.json']}; give a folder "
                            "written by `digitlab train --recipe reader` (or measured by `digitlab evaluate`)")
    size = sum(p.stat().st_size for p in wanted)
    if size > READER_MAX_BYTES:
        raise DigitlabError(f"{src}: the reader is {size / 2**20:.2f} MiB, over the 10 MiB a bundled reader may take")
    card = reader_card(src, _json(realistic) if realistic is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    for path in wanted:
        atomic_write_bytes(out / path.name, path.read_bytes())
    atomic_write_text(out / "MODEL_CARD.md", card)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digitlab.pretrained.build", description=__doc__)
    parser.add_argument("run", help="a run directory finished by `digitlab train` (for reader: its folder)")
    parser.add_argument("--dataset", default="mnist", choices=[*BUNDLED, "reader"],
                        help="which bundled model (default: mnist); reader: the line reader behind `read`")
    parser.add_argument("--realistic", type=Path, default=None,
                        help="results.json of `python -m benchmarks.realistic` for the card (default: none)")
    args = parser.parse_args(argv)
    try:
        if args.dataset == "reader":
            print(install_reader(args.run, realistic=args.realistic))
        else:
            print(install(args.run, args.dataset, realistic=args.realistic))
    except DigitlabError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
