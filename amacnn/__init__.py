"""The AMACNN network, its loss, datasets, weights and model cards, training and evaluation.

Import the submodules (model, weights, train, ...); this package imports nothing heavy
so that `fer-mine --help` starts fast.
"""
