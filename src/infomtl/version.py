"""The package version (also in pyproject.toml), and telling a later version apart."""

__version__ = "0.1.0"


def is_newer(version: object) -> bool:
    """Whether ``version`` (as a run folder or an export records it) is a later infomtl
    release than this one; False for a missing or unparsable version."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(str(version)) > Version(__version__)
    except InvalidVersion:
        return False
