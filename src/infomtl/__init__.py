"""infomtl: multi-task representation learning for natural language understanding.

Importing the package is cheap: torch, transformers and the rest load only when
the modules that need them are imported.
"""

from __future__ import annotations

from infomtl.version import __version__

__all__ = ["__version__", "load"]


def load(path, device: str = "cpu"):
    """A predictor for a run folder, an STL folder or an export folder.

    ``infomtl.load(path).predict(texts)`` returns one ``{task: prediction}`` dict
    per text; see :mod:`infomtl.inference.predict`. torch is imported on the first call only.
    """
    from infomtl.inference.predict import load as _load

    return _load(path, device=device)
