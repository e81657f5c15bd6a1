"""rsdistill: knowledge distillation for remote-sensing scene classifiers."""

__version__ = "0.1.0"
