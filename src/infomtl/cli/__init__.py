"""The ``infomtl`` command line (:func:`main`; see :mod:`infomtl.cli.main`)."""

from infomtl.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
