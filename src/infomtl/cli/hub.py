"""``infomtl push``: an export (or a run, exported on the way) to a Hugging Face Hub repo;
and the ``--revision`` option of the commands that load a model by Hub repo id."""

from __future__ import annotations

import argparse

#: The help text of ``RUN_OR_EXPORT`` where a Hub repo id is accepted too.
MODEL_HELP = ("run folder (infomtl train), export folder (infomtl export), or the Hugging Face Hub repo id "
              "of an export (NAMESPACE/NAME, infomtl push); an existing local path wins")


PUSH_DESCRIPTION = (
    "Upload an export folder (checked against its manifest), or a run / STL folder exported on the way to a "
    "temporary folder, to the Hub repo REPO_ID in one commit: the repo is created if needed, the files of the "
    "export's manifest uploaded, other files of the repo left as they are. The token is the Hugging Face "
    "client's own: HF_TOKEN, or `hf auth login`; infomtl never writes or prints it. Load it back with "
    "`infomtl predict REPO_ID` or infomtl.load(\"REPO_ID\")."
)


def add_revision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", default=None, metavar="REV",
                        help="with a Hub repo id: the branch, tag or commit to load (default: main)")


def cmd_push(args: argparse.Namespace) -> int:
    from infomtl.inference.push import push

    pushed = push(args.source, args.repo_id, revision=args.revision, private=args.private,
                  commit_message=args.commit_message, license=args.license)
    print(f"pushed {args.source} to {pushed.repo_url} (revision {pushed.revision}, commit {pushed.commit}): "
          f"{pushed.commit_url}")
    print(f"load it with infomtl.load({args.repo_id!r}) or `infomtl predict {args.repo_id} --input FILE`")
    return 0


def add_push_command(sub: argparse._SubParsersAction) -> None:
    ps = sub.add_parser("push", help="upload a run or export to a Hugging Face Hub repo",
                        description=PUSH_DESCRIPTION)
    ps.add_argument("source", metavar="RUN_OR_EXPORT", help="run folder (infomtl train) or export folder "
                    "(infomtl export)")
    ps.add_argument("repo_id", metavar="REPO_ID", help="the Hub repo: NAMESPACE/NAME (your user or organization)")
    ps.add_argument("--revision", default=None, metavar="BRANCH",
                    help="branch to commit to, created from main if missing (default: main)")
    ps.add_argument("--private", action="store_true",
                    help="create the repo private (an existing repo keeps its visibility)")
    ps.add_argument("--commit-message", default=None, metavar="M",
                    help="the commit's message (default: 'infomtl export (N files)')")
    ps.add_argument("--license", default=None, metavar="ID",
                    help="the model card's license when exporting a run folder: a Hub license id such as "
                    "apache-2.0 or mit (default: other; an export folder keeps its own)")
    ps.set_defaults(func=cmd_push)
