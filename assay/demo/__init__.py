"""A real model endpoint that runs offline: the bundled Gemma 3 270M served by llama.cpp, for tests and the demo."""

from assay.demo.model_server import DEFAULT_MODEL_NAME, ModelServer, ModelServerError, ensure_model_file

__all__ = ["DEFAULT_MODEL_NAME", "ModelServer", "ModelServerError", "ensure_model_file"]
