"""Face- and style-LoRA training (paper section 2.2): ``train``/``train_style`` and the trainer behind them."""

from .config import StyleTrainConfig, TrainConfig

__all__ = ["TrainConfig", "StyleTrainConfig", "train", "train_style", "LoraTrainer"]


def __getattr__(name: str):  # heavy modules (torch, diffusers) load on first use
    if name in ("train", "train_style"):
        from . import api

        return getattr(api, name)
    if name == "LoraTrainer":
        from .trainer import LoraTrainer

        return LoraTrainer
    raise AttributeError(name)
