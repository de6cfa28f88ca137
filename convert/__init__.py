"""Export to NIR and ONNX, NIR validation, NIR to Lava conversion, fixed-point quantisation."""
