"""infomtl: multi-task representation learning for natural language understanding.

Importing the package is cheap: torch, transformers and the rest load only when
the modules that need them are imported.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
