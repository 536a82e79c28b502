"""digitlab.evaluation: metrics, `report.json` and plots of a trained model.

`evaluate_model` -> report dict, `write_report` -> `report.json`, `format_report` -> table,
`plots.plot_run` -> PNGs. torch and matplotlib are imported only when used.
"""
from digitlab.evaluation.metrics import confusion_matrix, precision_recall_f1, softmax, top_k_accuracy
from digitlab.evaluation.report import (
    REPORT_NAME,
    evaluate_model,
    format_report,
    report_from_logits,
    write_report,
)

__all__ = [
    "REPORT_NAME",
    "confusion_matrix",
    "evaluate_model",
    "format_report",
    "precision_recall_f1",
    "report_from_logits",
    "softmax",
    "top_k_accuracy",
    "write_report",
]
