"""digitlab.evaluation: metrics, calibration, `report.json` and plots of a trained model.

`evaluate_model` / `evaluate_run` -> report dict, `write_report` -> `report.json`,
`format_report` -> table, `calibrate` -> temperature + calibration section, `plots.plot_run`
-> PNGs. torch and matplotlib are imported only when used.
"""
from digitlab.evaluation.calibration import (
    CalibrationResult,
    calibrate,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from digitlab.evaluation.metrics import (
    averages,
    confusion_matrix,
    precision_recall_f1,
    softmax,
    top_k_accuracy,
)
from digitlab.evaluation.report import (
    REPORT_NAME,
    DatasetMismatchWarning,
    classification_table,
    evaluate_model,
    evaluate_run,
    format_report,
    report_from_logits,
    write_report,
)

__all__ = [
    "REPORT_NAME",
    "CalibrationResult",
    "DatasetMismatchWarning",
    "averages",
    "calibrate",
    "calibration_report",
    "classification_table",
    "confusion_matrix",
    "evaluate_model",
    "evaluate_run",
    "expected_calibration_error",
    "fit_temperature",
    "format_report",
    "negative_log_likelihood",
    "precision_recall_f1",
    "reliability_bins",
    "report_from_logits",
    "softmax",
    "top_k_accuracy",
    "write_report",
]
