"""Inference backends for the streaming step (torch, ONNX Runtime, TensorRT) and ONNX export.

See backends.py for the interface and selection rules, docs/INFERENCE.md for the numbers."""
from ram_tracker.inference.backends import (BACKENDS, BackendError, StepBackend,  # noqa: F401
                                            select_backend, tensorrt_available)
