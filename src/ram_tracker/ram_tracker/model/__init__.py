"""RAM model (no ROS imports): build_model(ModelConfig()) -> RAMModel."""
from .config import ModelConfig
from .ram_model import OUTPUT_STRIDE, RAMModel, State, build_model

__all__ = ["ModelConfig", "RAMModel", "State", "build_model", "OUTPUT_STRIDE"]
