"""ONNX export: ``dw.onnx.export(model, args, "model.onnx", input_names=[...], output_names=[...],
dynamic_axes={...}, opset_version=17)``, with ``torch.onnx.export``'s meaning.

The model runs once in eval mode; the graph autograd records during that run is translated op by op
through a converter table (``deepwise.onnx.table``, opsets 13 to 21). ``compare`` runs the file
in onnxruntime next to the model. Needs the ``onnx`` extra (onnx, onnxruntime).
"""

from deepwise.onnx.export import ExportError, compare, export
from deepwise.onnx.table import CONVERTERS, MAX_OPSET, MIN_OPSET

__all__ = ["CONVERTERS", "MAX_OPSET", "MIN_OPSET", "ExportError", "compare", "export"]
