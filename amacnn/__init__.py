"""The AMACNN network, its loss, weights I/O, training and evaluation."""

from fer_mine.amacnn.model import AMACNN, PRESETS, AMACNNConfig, build_model

__all__ = ["AMACNN", "PRESETS", "AMACNNConfig", "build_model"]
