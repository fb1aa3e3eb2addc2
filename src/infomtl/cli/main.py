"""The ``infomtl`` command line: train, evaluate, predict, export, serve, push, demo, methods, download,
sweep, report, autosem, analyze, baseline (one module per command group).

User errors, and writes that fail (disk full, read-only folder), print one line
(``error: ...``) and exit with status 2; no traceback. ``train`` and ``sweep`` stopped by
SIGINT / SIGTERM print the line that says what was saved and the command that resumes, and
exit with 128 + the signal number.
The library's progress lines (its loggers, INFO) go to stdout, its warnings to stderr;
``--quiet`` keeps the warnings only (and turns the progress bars off).
Building the parser imports no torch: each command imports what it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from infomtl.cli.analyze import add_analyze_command
from infomtl.cli.autosem import add_autosem_command
from infomtl.cli.baseline import add_baseline_commands
from infomtl.cli.common import EXIT_USER_ERROR, Parser
from infomtl.cli.experiments import add_experiment_commands
from infomtl.cli.inference import add_inference_commands
from infomtl.cli.train import add_tool_commands, add_train_commands
from infomtl.errors import InfomtlError, Interrupted
from infomtl.fileio import WRITE_FAILURES, describe_os_error
from infomtl.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="infomtl",
        description="Multi-task representation learning on a shared PLM encoder: "
        "InfoMTL, VIP-MTL and the MTL baselines.",
    )
    parser.add_argument("--version", action="version", version=f"infomtl {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines or bars (warnings and errors only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    add_train_commands(sub)
    add_inference_commands(sub)
    add_tool_commands(sub)
    add_experiment_commands(sub)
    add_autosem_command(sub)
    add_analyze_command(sub)
    add_baseline_commands(sub)
    return parser


@contextmanager
def library_output(quiet: bool = False) -> Iterator[None]:
    """Within the block, the ``infomtl`` loggers' lines are printed as they are: below
    WARNING on stdout (none with ``quiet``), WARNING and above on stderr."""
    logger = logging.getLogger("infomtl")
    progress = logging.StreamHandler(sys.stdout)
    progress.addFilter(lambda record: record.levelno < logging.WARNING)
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    handlers = [warnings] if quiet else [progress, warnings]
    previous = logger.level
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(previous)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with library_output(args.quiet):
            return args.func(args)
    except InfomtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a write the library did not name itself: still one line
        if exc.errno not in WRITE_FAILURES:
            raise
        print(f"error: {exc.filename or 'a file'}: {describe_os_error(exc.errno)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Interrupted as exc:  # stopped by SIGINT / SIGTERM after saving
        print(exc, file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
