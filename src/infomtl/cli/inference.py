"""``infomtl predict``, ``export``, ``serve`` and ``push``: using a trained run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infomtl.cli.hub import MODEL_HELP, add_push_command, add_revision_option
from infomtl.errors import InfomtlError
from infomtl.inference.batcher import BatchSettings
from infomtl.inference.formats import INPUT_FORMATS, OUTPUT_FORMATS, read_inputs, write_outputs
from infomtl.inference.serve import MAX_TOKENS, Limits, require_extra, serve
from infomtl.logs import lines_to_stderr
from infomtl.precision import INFERENCE_PRECISIONS, QUANTIZE_MODES


def cmd_predict(args: argparse.Namespace) -> int:
    if args.output in (None, "-"):  # the predictions alone on stdout; progress lines on stderr
        with lines_to_stderr():
            return _predict(args)
    return _predict(args)


def _predict(args: argparse.Namespace) -> int:
    from infomtl.inference.predict import load

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    texts, pairs = read_inputs(args.input, args.input_format)
    predictor = load(args.run_dir, revision=args.revision, quantize=args.quantize, precision=args.precision)
    if tasks is not None:
        predictor._choose(tasks)  # unknown task names fail before any work
    progress = args.progress
    if progress is None:
        progress = len(texts) > 1000 and sys.stderr.isatty()
    predictions = predictor.predict(texts, pairs, tasks, batch_size=args.batch_size, progress=progress)
    if args.output in (None, "-"):
        write_outputs(sys.stdout, args.output_format, predictor.tasks, texts, pairs, predictions)
    else:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="\n") as fh:
                write_outputs(fh, args.output_format, predictor.tasks, texts, pairs, predictions)
            tmp.replace(out)  # also fails here when OUT is a folder
        except OSError as exc:
            if tmp.is_file():
                tmp.unlink()
            raise InfomtlError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from infomtl.inference.export import export_run
    from infomtl.inference.onnx_export import export_onnx

    export = export_onnx if args.format == "onnx" else export_run
    out = export(args.run_dir, args.out_dir, license=args.license)
    print(f"exported {args.run_dir} to {out}; load it with infomtl.load({str(out)!r}) "
          f"or `infomtl predict {out} --input FILE`")
    return 0


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    """``--quantize`` and ``--precision`` (of ``predict`` and ``serve``)."""
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default="none",
                        help="int8: the encoder's Linear layers dynamically quantised to int8 for CPU "
                        "inference (faster; probabilities change slightly; the heads stay fp32; PyTorch "
                        "models on the CPU only) (default: none)")
    parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                        help="what the forward passes compute in: auto is bf16 autocast on a CPU with bf16 "
                        "instructions (avx512_bf16, amx_bf16, Arm bf16), else fp32 (default: auto)")


def add_inference_commands(sub: argparse._SubParsersAction) -> None:
    """The ``predict``, ``export``, ``serve`` and ``push`` commands."""
    _add_predict_export(sub)
    _add_serve(sub)
    add_push_command(sub)


def _add_predict_export(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("predict", help="predict every task for new texts with a trained run or export",
                        description="Label texts with every task of a run folder, STL folder or export "
                        "folder, or an export on the Hugging Face Hub by repo id. Input: one text per line (text), "
                        "JSONL objects with \"text\" and an "
                        "optional \"text_pair\", or TSV (text, optional pair; optional header 'text'). "
                        "Every input line must hold a text; outputs follow the input order.")
    pr.add_argument("run_dir", metavar="RUN_OR_EXPORT", help=MODEL_HELP)
    add_revision_option(pr)
    pr.add_argument("--input", required=True, metavar="FILE", help="input file, or - for standard input")
    pr.add_argument("--input-format", choices=INPUT_FORMATS, default=None,
                    help="input format (default: by extension: .jsonl, .tsv, else text)")
    pr.add_argument("--tasks", default=None, help="comma-separated tasks to predict (default: all)")
    pr.add_argument("--batch-size", type=int, default=64, help="texts per batch (default: 64)")
    pr.add_argument("--output", default=None, metavar="FILE", help="output file (default: standard output)")
    pr.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jsonl",
                    help="jsonl: one object per text; tsv: text and per-task columns (default: jsonl)")
    pr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: for more than 1000 texts on a terminal)")
    add_speed_options(pr)
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="write a self-contained folder for a trained run",
                        description="Export a run (or STL) folder: encoder and tokenizer (save_pretrained, "
                        "safetensors), heads in safetensors, tasks and method in infomtl.json with the "
                        "SHA-256 of every file, and a model card README.md with the run's metrics. "
                        "--format onnx writes the encoder and all task heads as one ONNX graph instead, "
                        "run with onnxruntime by predict and serve (pip install \"infomtl[onnx]\").")
    ex.add_argument("run_dir", help="run folder written by `infomtl train`")
    ex.add_argument("out_dir", metavar="OUT", help="new (or empty) folder to write")
    ex.add_argument("--license", default=None, metavar="ID",
                    help="the model card's license, a Hub license id such as apache-2.0 or mit (default: other)")
    ex.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors",
                    help="safetensors: encoder and heads for PyTorch; onnx: one ONNX graph (default: safetensors)")
    ex.set_defaults(func=cmd_export)


def cmd_serve(args: argparse.Namespace) -> int:
    require_extra()  # before the model loads
    limits = Limits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                    max_text_chars=args.max_text_chars)
    batching = BatchSettings(max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                             max_queue=args.max_queue, request_timeout_s=args.request_timeout)
    serve(args.run_dir, host=args.host, port=args.port, limits=limits, batch_size=args.batch_size,
          access_log=args.access_log, batching=batching, max_tokens=args.max_tokens, revision=args.revision,
          quantize=args.quantize, precision=args.precision)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="serve a trained run or export over HTTP (JSON API)",
                        description="Answer POST /predict {\"texts\": [...], \"tasks\": [...]} with "
                        "every (or the chosen) task's prediction per text, GET /tasks, GET /health and "
                        "GET /stats; the OpenAPI schema at /openapi.json and /docs. Concurrent requests "
                        "are batched into one forward pass (--max-batch, --batch-wait-ms). Requests over "
                        "a limit get a 4xx JSON error, a full queue a 503 with Retry-After, a request "
                        "unanswered in time a 504. SIGTERM stops accepting, answers the requests in "
                        "flight and exits 0. Needs the serve extra: pip install 'infomtl[serve]'.")
    sv.add_argument("run_dir", metavar="RUN_OR_EXPORT", help=MODEL_HELP)
    add_revision_option(sv)
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)")
    lim = sv.add_argument_group("limits per request")
    lim.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes, metavar="N",
                     help=f"largest request body in bytes, else 413 (default: {Limits.max_body_bytes})")
    lim.add_argument("--max-texts", type=int, default=Limits.max_texts, metavar="N",
                     help=f"most texts per request, else 422 (default: {Limits.max_texts})")
    lim.add_argument("--max-text-chars", type=int, default=Limits.max_text_chars, metavar="N",
                     help=f"longest text in characters, else 422 (default: {Limits.max_text_chars})")
    bat = sv.add_argument_group("batching and queueing")
    bat.add_argument("--max-batch", type=int, default=BatchSettings.max_batch, metavar="N",
                     help="most texts of concurrent requests answered by one predict call; a larger "
                     f"request runs alone, never split; 1: one request at a time (default: {BatchSettings.max_batch})")
    bat.add_argument("--batch-wait-ms", type=float, default=BatchSettings.batch_wait_ms, metavar="MS",
                     help="longest wait of the oldest queued request for others to join its batch; "
                     f"0: no wait (default: {BatchSettings.batch_wait_ms:g})")
    bat.add_argument("--max-queue", type=int, default=BatchSettings.max_queue, metavar="N",
                     help=f"most requests waiting, else 503 with Retry-After (default: {BatchSettings.max_queue})")
    bat.add_argument("--request-timeout", type=float, default=BatchSettings.request_timeout_s, metavar="S",
                     help="seconds from a request's arrival in the queue to its answer, else 504 "
                     f"(default: {BatchSettings.request_timeout_s:g})")
    bat.add_argument("--batch-size", type=int, default=64, metavar="N",
                     help="most texts per forward pass within a batch (default: 64)")
    bat.add_argument("--max-tokens", type=int, default=MAX_TOKENS, metavar="N",
                     help="most padded tokens per forward pass (texts x the longest, sorted by length); "
                     f"a longer text gets a pass of its own (default: {MAX_TOKENS})")
    sv.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                    help="log every request (default: on)")
    add_speed_options(sv)
    sv.set_defaults(func=cmd_serve)
