"""spacessl: self-supervised learning for exploring huge unlabelled space-physics and geophysics archives."""

__version__ = "0.1.0"
