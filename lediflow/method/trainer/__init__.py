"""The trainer every model shares: the loop (loop.py), its config and schedule, the EMA, checkpoints, metrics log and DDP helpers."""

from lediflow.method.trainer.checkpoints import list_checkpoints
from lediflow.method.trainer.config import LossFn, NonFiniteLossError, TrainConfig, TrainResult, learning_rate
from lediflow.method.trainer.distributed import init_distributed, is_distributed, world
from lediflow.method.trainer.ema import ema_decay_at
from lediflow.method.trainer.loop import Trainer

__all__ = ["LossFn", "NonFiniteLossError", "TrainConfig", "TrainResult", "Trainer", "ema_decay_at",
           "init_distributed", "is_distributed", "learning_rate", "list_checkpoints", "world"]
