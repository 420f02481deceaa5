"""The engine: models and their exact traces. Pure PyTorch and NumPy; knows nothing of HTTP."""
