"""Adapters between stealguard and other model-stealing tool kits.

:mod:`stealguard.interop.art` connects IBM's Adversarial Robustness Toolbox (ART) in both
directions: stealguard defenses as ART postprocessors or ART classifier wrappers, and
stealguard black boxes as ART classifiers for ART's extraction attacks. ART is an optional
extra (``pip install stealguard[art]``); nothing here is imported by ``import stealguard``.
"""
