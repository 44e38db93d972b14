"""See inside a network: summaries, gradient health, overfitting advice, NaN tracing, feature maps,
the computation graph, and the HTML run report that shows them."""

from deepwise.autograd.anomaly import detect_anomaly
from deepwise.diagnostics.anomaly import explain_nan, find_nan
from deepwise.diagnostics.attention import AttentionMap, attention_maps, describe_attention, describe_head
from deepwise.diagnostics.features import feature_maps, plot_feature_maps, plot_filters
from deepwise.diagnostics.findings import run_findings
from deepwise.diagnostics.gradients import Diagnosis, GradientMonitor
from deepwise.diagnostics.graphviz import graph, render_graph
from deepwise.diagnostics.overfitting import OverfittingAdvisor, diagnose_overfitting
from deepwise.diagnostics.report import ReportError, build_report, model_overview
from deepwise.diagnostics.vanishing import compare_gradient_flow, format_gradient_flow, gradient_norms_through_time
from deepwise.nn.summary import Summary, summary  # reads a model only: it lives with nn

__all__ = [
    "AttentionMap", "attention_maps", "describe_attention", "describe_head",
    "Diagnosis", "GradientMonitor", "OverfittingAdvisor", "ReportError", "Summary", "build_report",
    "compare_gradient_flow", "format_gradient_flow", "gradient_norms_through_time",
    "detect_anomaly", "diagnose_overfitting", "explain_nan", "feature_maps", "find_nan", "graph", "model_overview",
    "run_findings",
    "plot_feature_maps", "plot_filters", "render_graph", "summary",
]
