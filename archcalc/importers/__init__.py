"""Specs from real models: torch modules (torch.fx) and ONNX files, and the callables that build them."""
