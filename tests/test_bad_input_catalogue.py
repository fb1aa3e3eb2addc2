"""A catalogue of bad inputs, one table: data files, config YAML, CLI flags, checkpoints and
exports, ``predict`` input, ``serve`` options and HTTP bodies.

Every command-line case must end with exit status 2 and exactly one stderr line
``error: ...`` that names the file (and line) or the option at fault, without a
traceback. Most cases run ``infomtl.cli.main`` in-process; the ones marked
``subprocess`` run ``python -m infomtl`` for real. HTTP cases feed the body to the
server's request parser and expect a 4xx status with a one-line message (the live
server is tested in ``test_serve.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from infomtl.cli import main
from infomtl.inference.serve import Limits, RequestError, parse_request

pytestmark = pytest.mark.usefixtures("one_thread")

#: A training command that fails on its input, and would take seconds if it did not.
TRAIN = ("train", "--backbone", "tiny", "--epochs", "1", "--max-steps", "1", "--max-train-examples", "8",
         "--max-eval-examples", "8", "--no-progress")
SYNTHETIC = (*TRAIN, "--benchmark", "synthetic")
GOOD_JSONL = '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'
GOOD_TSV = "good\tpos\nbad\tneg\n"


@dataclass
class Body:
    """An HTTP request body for ``POST /predict`` (with the limits of :data:`HTTP_LIMITS`)."""

    data: bytes
    status: int


HTTP_LIMITS = Limits(max_body_bytes=10_000, max_texts=4, max_text_chars=50)
HTTP_TASKS = ["sentiment", "topic"]


class Env:
    """A case's scratch folder (``tmp``), and the trained run and its export, built on demand."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.request, self.monkeypatch = tmp, request, monkeypatch
        self.out = str(tmp / "out")  # --output-dir of training cases

    @property
    def run(self) -> Path:
        """The session's trained run (``tiny_run``)."""
        return self.request.getfixturevalue("tiny_run")

    @property
    def export(self) -> Path:
        return self.request.getfixturevalue("exported")

    def write(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def copy(self, src: Path, name: str) -> Path:
        return Path(shutil.copytree(src, self.tmp / name))

    def text_input(self) -> str:
        return self.write("in.txt", "hello there\n")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    from infomtl.inference.export import export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("catalogue") / "export")


# --------------------------------------------------------------------------- case builders


def task_folder(**files: str | bytes) -> Callable[[Env], list[str]]:
    """Train on one task folder ``{tmp}/task`` holding ``files`` (``train_jsonl=`` is train.jsonl,
    ``train_text_txt=`` train_text.txt)."""
    def build(env: Env) -> list[str]:
        for name, content in files.items():
            stem, _, ext = name.rpartition("_")  # the last "_" is the dot: train_text_txt is train_text.txt
            env.write(f"task/{stem}.{ext}", content)
        return [*TRAIN, "--task-dirs", str(env.tmp / "task"), "--output-dir", env.out]
    return build


def hf_dataset(env: Env, labels: tuple[str, str] = ("pos", "neg")) -> Path:
    """A DatasetDict saved at ``{tmp}/hf`` (text, label as strings; validation's second label is ``labels[1]``)."""
    import datasets

    part = {"text": ["good", "bad"], "label": ["pos", "neg"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(part), "validation": datasets.Dataset.from_dict(
        {"text": ["good", "bad"], "label": list(labels)})}).save_to_disk(str(env.tmp / "hf"))
    return env.tmp / "hf"


def hf_folder(env: Env) -> Path:
    """A task folder whose task.yaml names the dataset of :func:`hf_dataset` (with a label 'meh')."""
    dataset = hf_dataset(env, ("pos", "meh"))
    env.write("hftask/task.yaml", f"source: hf\ndataset: {dataset}\nlabels: [pos, neg]\n")
    return env.tmp / "hftask"


def config(text: str | bytes) -> Callable[[Env], list[str]]:
    """Train with ``--config {tmp}/c.yaml`` holding ``text``."""
    return lambda env: [*TRAIN, "--config", env.write("c.yaml", text), "--output-dir", env.out]


def flags(*args: str) -> Callable[[Env], list[str]]:
    """Train on the synthetic benchmark with ``args`` added."""
    return lambda env: [*SYNTHETIC, *args, "--output-dir", env.out]


def damaged_run(damage: Callable[[Path], object], command: str = "predict") -> Callable[[Env], list[str]]:
    """``predict`` (or ``evaluate``) on a copy ``{tmp}/run`` of the trained run after ``damage(copy)``."""
    def build(env: Env) -> list[str]:
        run = env.copy(env.run, "run")
        damage(run)
        if command == "evaluate":
            return ["evaluate", str(run)]
        return ["predict", str(run), "--input", env.text_input()]
    return build


def damaged_export(damage: Callable[[Path], object]) -> Callable[[Env], list[str]]:
    """``predict`` on a copy ``{tmp}/export`` of the export after ``damage(copy)``."""
    def build(env: Env) -> list[str]:
        export = env.copy(env.export, "export")
        damage(export)
        return ["predict", str(export), "--input", env.text_input()]
    return build


def edit_manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        manifest = json.loads((folder / "infomtl.json").read_text())
        change(manifest)
        (folder / "infomtl.json").write_text(json.dumps(manifest))
    return damage


def truncate(path: str, size: int = 100) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / path).write_bytes((folder / path).read_bytes()[:size])
    return damage


def predict_input(name: str, content: str | bytes, *args: str) -> Callable[[Env], list[str]]:
    """``predict`` on the trained run with the input file ``{tmp}/name``."""
    return lambda env: ["predict", str(env.run), "--input", env.write(name, content), *args]


def serve(*args: str) -> Callable[[Env], list[str]]:
    return lambda env: ["serve", str(env.run), *args]


def serve_without_extra(env: Env) -> list[str]:
    env.monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi raises ImportError
    return ["serve", str(env.run)]


def body(data: bytes | object, status: int) -> Callable[[Env], Body]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return lambda env: Body(raw, status)


@dataclass
class Case:
    id: str
    build: Callable[[Env], list[str] | Body]
    says: tuple[str, ...]  # in the error line; "{tmp}" is the case's scratch folder
    subprocess: bool = False


CASES = [
    # data files: a task folder {tmp}/task
    Case("data-jsonl-bad-json", task_folder(train_jsonl=GOOD_JSONL + '{"text": "x", "label":\n', val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:3:", "invalid JSON")),
    Case("data-jsonl-not-an-object", task_folder(train_jsonl=GOOD_JSONL + "[1, 2]\n", val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:3:", "expected a JSON object")),
    Case("data-jsonl-missing-label", task_folder(train_jsonl=GOOD_JSONL + '{"text": "x"}\n', val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:3:", "missing key 'label'")),
    Case("data-jsonl-text-not-a-string", task_folder(train_jsonl='{"text": ["a"], "label": "x"}\n',
                                                     val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:1:", "'text' must be a string")),
    Case("data-jsonl-nested-too-deeply", task_folder(train_jsonl=GOOD_JSONL + "[" * 5000 + "\n", val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:3:", "nested too deeply")),
    Case("data-jsonl-number-too-long", task_folder(train_jsonl='{"text": "a", "label": ' + "9" * 5000 + "}\n",
                                                   val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:1:", "too many digits")),
    Case("data-jsonl-empty-text", task_folder(train_jsonl=GOOD_JSONL + '{"text": "  ", "label": "pos"}\n',
                                              val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:3:", "empty text")),
    Case("data-tsv-wrong-column-count", task_folder(train_tsv=GOOD_TSV + "ugly\tneg\textra\tmore\n", val_tsv=GOOD_TSV),
         ("{tmp}/task/train.tsv:3:", "expected 2 tab-separated columns, got 4")),
    Case("data-tsv-empty-text", task_folder(train_tsv="good\tpos\n \tneg\n", val_tsv=GOOD_TSV),
         ("{tmp}/task/train.tsv:2:", "empty text")),
    Case("data-unknown-label", task_folder(train_jsonl=GOOD_JSONL, val_jsonl='{"text": "meh", "label": "neutral"}\n'),
         ("{tmp}/task/val.jsonl:1:", "unknown label 'neutral'", "neg, pos")),
    Case("data-label-id-too-large", task_folder(train_jsonl='{"text": "a", "label": 99999999999}\n',
                                                val_jsonl='{"text": "b", "label": 0}\n'),
         ("{tmp}/task/train.jsonl:1:", "label id 99999999999", "task.yaml")),
    Case("data-negative-label-id", task_folder(train_tsv="a\t-1\nb\t0\n", val_tsv="a\t0\n"),
         ("{tmp}/task/train.tsv:1:", "label id -1 is negative")),
    Case("data-not-utf8", task_folder(train_tsv=b"good\tpos\nbad \xff\tneg\n", val_tsv=GOOD_TSV),
         ("{tmp}/task/train.tsv:2:", "invalid UTF-8")),
    Case("data-empty-val-split", task_folder(train_jsonl=GOOD_JSONL, val_jsonl="\n"),
         ("{tmp}/task/val.jsonl:", "the val split has no rows")),
    Case("data-missing-val-split", task_folder(train_jsonl=GOOD_JSONL),
         ("{tmp}/task:", "missing required val split")),
    Case("data-regression-target-not-a-number", task_folder(task_yaml="kind: regression\n",
                                                            train_tsv="a\t0.5\nb\tabc\n", val_tsv="a\t1\n"),
         ("{tmp}/task/train.tsv:2:", "finite number", "'abc'")),
    Case("data-text-pair-missing", task_folder(train_jsonl='{"text": "a", "label": "x", "text_pair": "b"}\n'
                                               '{"text": "c", "label": "y"}\n', val_jsonl=GOOD_JSONL),
         ("{tmp}/task/train.jsonl:2:", "missing text_pair")),
    Case("data-task-yaml-invalid", task_folder(task_yaml="kind: [classification\n", train_jsonl=GOOD_JSONL,
                                               val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:2:", "invalid YAML")),
    Case("data-task-yaml-unknown-key", task_folder(task_yaml="kind: classification\ncolour: red\n",
                                                   train_jsonl=GOOD_JSONL, val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:2:", "unknown key: colour")),
    Case("data-task-yaml-bad-kind", task_folder(task_yaml="kind: ranking\n", train_jsonl=GOOD_JSONL,
                                                val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:1:", "'ranking' is not a task kind")),
    Case("data-task-yaml-bad-threshold", task_folder(task_yaml="kind: multilabel\nthreshold: 2\n",
                                                     train_jsonl=GOOD_JSONL, val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:2:", "threshold", "between 0 and 1")),
    Case("data-task-yaml-not-a-mapping", task_folder(task_yaml="- a\n- b\n", train_jsonl=GOOD_JSONL,
                                                     val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:1:", "expected a mapping")),
    Case("data-task-folder-missing", lambda env: [*TRAIN, "--task-dirs", str(env.tmp / "nothing"),
                                                  "--output-dir", env.out],
         ("{tmp}/nothing:", "task folder not found")),
    Case("data-task-yaml-duplicate-key", task_folder(task_yaml="kind: classification\nkind: regression\n",
                                                     train_jsonl=GOOD_JSONL, val_jsonl=GOOD_JSONL),
         ("{tmp}/task/task.yaml:2:", "duplicate key 'kind' (first given on line 1)")),
    Case("data-tweeteval-layout-misaligned", task_folder(mapping_txt="0\tneg\n1\tpos\n", train_text_txt="a\nb\n",
                                                         train_labels_txt="0\n", val_text_txt="a\n",
                                                         val_labels_txt="1\n"),
         ("{tmp}/task/train_labels.txt:", "1 lines but", "line-aligned")),
    Case("data-tweeteval-layout-label-outside-mapping", task_folder(
        mapping_txt="0\tneg\n1\tpos\n", train_text_txt="a\nb\n", train_labels_txt="0\n7\n",
        val_text_txt="a\n", val_labels_txt="1\n"),
         ("{tmp}/task/train_labels.txt:2:", "label 7 is not in mapping.txt")),
    Case("data-hf-bad-label-column", lambda env: [*TRAIN, "--hf-task", f"dataset={hf_dataset(env)},label=stars",
                                                  "--output-dir", env.out],
         ("{tmp}/hf[train]: no label column 'stars' (columns: text, label)",)),
    Case("data-hf-unknown-label", lambda env: [*TRAIN, "--task-dirs", str(hf_folder(env)), "--output-dir", env.out],
         ("{tmp}/hf[validation] row 1: unknown label 'meh'", "labels of task.yaml")),
    # config YAML: {tmp}/c.yaml
    Case("config-unknown-key", config("epochs: 1\nlearning_rate: 0.1\n"),
         ("{tmp}/c.yaml:", "unknown option: learning_rate")),
    Case("config-wrong-type", config("benchmark: synthetic\nbatch_size: many\n"),
         ("{tmp}/c.yaml:", "batch_size must be int", "'many'")),
    Case("config-bad-value", config("benchmark: synthetic\nhead_dropout: 1.5\n"),
         ("--head-dropout must be in [0, 1)", "1.5")),
    Case("config-invalid-yaml", config("benchmark: synthetic\nlr: [1,\n"), ("{tmp}/c.yaml:3:",)),
    Case("config-not-a-mapping", config("- 1\n"), ("{tmp}/c.yaml:", "expected a mapping")),
    Case("config-not-utf8", config(b"method: \xff\n"), ("{tmp}/c.yaml:", "cannot read config")),
    Case("config-duplicate-key", config("benchmark: synthetic\nlr: 0.1\nepochs: 1\nlr: 0.2\n"),
         ("{tmp}/c.yaml:4:", "duplicate key 'lr' (first given on line 2)")),
    Case("config-missing", lambda env: [*TRAIN, "--config", str(env.tmp / "none.yaml")],
         ("{tmp}/none.yaml:", "config file not found")),
    # command-line flags
    Case("flag-unknown-method", flags("--method", "nope"), ("unknown method 'nope'", "infomtl"), subprocess=True),
    Case("flag-unknown-weighting", flags("--method", "infomtl", "--weighting", "nope"), ("unknown weighting 'nope'",)),
    Case("flag-negative-lr", flags("--lr=-1"), ("--lr must be > 0", "-1")),
    Case("flag-lr-not-a-number", flags("--lr", "fast"), ("lr must be float", "'fast'")),
    Case("flag-batch-size-zero", flags("--batch-size", "0"), ("--batch-size must be > 0",)),
    Case("flag-unknown-task", flags("--tasks", "topic,weather"), ("unknown task 'weather'", "synthetic: sentiment")),
    Case("flag-task-typo", flags("--tasks", "topik"), ("unknown task 'topik' (did you mean `topic`?)",)),
    Case("flag-task-unknown-benchmark", flags("--tasks", "tweetevall:irony"),
         ("unknown benchmark 'tweetevall' (did you mean `tweeteval`?)",)),
    Case("flag-task-name-from-two-sources", lambda env: [
        *SYNTHETIC, "--tasks", "synthetic:topic", "--task-dirs",
        str(Path(env.write("topic/train.tsv", GOOD_TSV)).parent), "--output-dir", env.out],
         ("'topic' is given by both synthetic and folder:{tmp}/topic",)),
    Case("flag-hf-task-unknown-key", flags("--hf-task", "dataset=x,lable=text"),
         ("--hf-task dataset=x,lable=text: unknown key 'lable' (did you mean `label`?)",)),
    Case("flag-repeated-task", flags("--tasks", "topic,topic"), ("listed twice",)),
    Case("flag-bad-choice", flags("--regime", "zigzag"), ("--regime", "invalid choice: 'zigzag'")),
    Case("flag-unrecognized", flags("--colour", "red"), ("unrecognized arguments: --colour",)),
    Case("flag-method-args-format", flags("--method-args", "alpha"), ("method_args: item 'alpha' has no '='",)),
    Case("flag-method-args-no-key", flags("--method-args", "=3"), ("method_args: item '=3' has no key before '='",)),
    Case("flag-unknown-hyperparameter", flags("--method", "infomtl", "--method-args", "gamma_x=1,alpah=1"),
         ("unknown hyperparameters: alpah (did you mean `alpha`?), gamma_x;", "valid: alpha")),
    Case("flag-aggregator-grads", flags("--method", "pcgrad", "--method-args", "grads=vmap"),
         ("method pcgrad: grads must be one of loop, batched, split, got 'vmap'",)),
    Case("flag-aggregator-rep-token-heads",
         flags("--method", "textcnn", "--weighting", "pcgrad", "--method-args", "grad_space=rep"),
         ("grad_space=rep needs heads that read the pooled h",)),
    Case("flag-unknown-benchmark", lambda env: [*TRAIN, "--benchmark", "glue", "--output-dir", env.out],
         ("unknown benchmark 'glue'",)),
    Case("flag-missing-data", lambda env: [*TRAIN, "--data-dir", str(env.tmp / "nodata"), "--output-dir", env.out],
         ("{tmp}/nodata/tweeteval", "--data-dir")),
    Case("flag-data-dir-without-the-benchmark",
         lambda env: [*TRAIN, "--data-dir", str(env.tmp), "--output-dir", env.out],
         ("--data-dir {tmp} holds no tweeteval/ folder",)),
    Case("flag-output-dir-holds-files",
         lambda env: [*SYNTHETIC, "--output-dir", str(Path(env.write("o/x", "")).parent)],
         ("--output-dir {tmp}/o", "already holds files")),
    Case("flag-resume-not-a-run", lambda env: ["train", "--resume", str(env.tmp)], ("--resume {tmp}",)),
    # checkpoints and exports
    Case("ckpt-truncated-weights", damaged_run(truncate("checkpoint/model.safetensors"), "evaluate"),
         ("{tmp}/run/checkpoint", "truncated"), subprocess=True),
    Case("ckpt-truncated-weights-predict", damaged_run(truncate("checkpoint/model.safetensors")),
         ("{tmp}/run/checkpoint", "truncated")),
    Case("ckpt-missing-checkpoint", damaged_run(lambda run: shutil.rmtree(run / "checkpoint")),
         ("{tmp}/run", "no checkpoint/model.safetensors")),
    Case("ckpt-missing-run-json", damaged_run(lambda run: (run / "run.json").unlink()),
         ("{tmp}/run/run.json", "not found")),
    Case("ckpt-bad-state-json", damaged_run(lambda run: (run / "checkpoint/state.json").write_text("nope")),
         ("{tmp}/run/checkpoint/state.json", "not valid JSON")),
    Case("ckpt-not-a-run", lambda env: ["predict", str(env.tmp), "--input", env.text_input()],
         ("{tmp}", "not a run folder")),
    Case("export-checksum-tampered", damaged_export(edit_manifest(
        lambda m: m["files"].update({"heads.safetensors": "0" * 64}))),
         ("{tmp}/export/heads.safetensors", "checksum mismatch")),
    Case("export-truncated-heads", damaged_export(truncate("heads.safetensors")),
         ("{tmp}/export/heads.safetensors", "checksum mismatch")),
    Case("export-manifest-truncated", damaged_export(truncate("infomtl.json", 50)),
         ("{tmp}/export/infomtl.json", "not valid JSON")),
    Case("export-manifest-wrong-type", damaged_export(edit_manifest(lambda m: m.update(method=5))),
         ("{tmp}/export/infomtl.json", "malformed")),
    Case("export-manifest-path-escape", damaged_export(edit_manifest(lambda m: m["files"].update({"../x": "0"}))),
         ("{tmp}/export/infomtl.json", "bad file name '../x'")),
    Case("export-file-missing", damaged_export(lambda e: (e / "encoder" / "config.json").unlink()),
         ("{tmp}/export/encoder/config.json", "missing from the export")),
    Case("export-newer-format", damaged_export(edit_manifest(lambda m: m.update(format_version=99))),
         ("{tmp}/export/infomtl.json", "newer")),
    # predict input
    Case("predict-bad-jsonl", predict_input("in.jsonl", '{"text": "a"}\n{"text": \n'),
         ("{tmp}/in.jsonl:2:", "not valid JSON"), subprocess=True),
    Case("predict-missing-text-field", predict_input("in.jsonl", '{"text": "a"}\n{"txt": "b"}\n'),
         ("{tmp}/in.jsonl:2:", '"text" field')),
    Case("predict-text-not-a-string", predict_input("in.jsonl", '{"text": null}\n'),
         ("{tmp}/in.jsonl:1:", '"text" field')),
    Case("predict-nested-too-deeply", predict_input("in.jsonl", "[" * 5000 + "\n"),
         ("{tmp}/in.jsonl:1:", "nested too deeply")),
    Case("predict-empty-line", predict_input("in.txt", "a\n\nb\n"), ("{tmp}/in.txt:2:", "empty text")),
    Case("predict-tsv-columns", predict_input("in.tsv", "a\tb\tc\n"), ("{tmp}/in.tsv:1:", "3 columns")),
    Case("predict-not-utf8", predict_input("in.txt", b"a\n\xfe\n"), ("{tmp}/in.txt:2:", "invalid UTF-8")),
    Case("predict-no-texts", predict_input("in.txt", ""), ("{tmp}/in.txt:", "no texts")),
    Case("predict-input-missing", lambda env: ["predict", str(env.run), "--input", str(env.tmp / "none.txt")],
         ("{tmp}/none.txt:", "not found")),
    Case("predict-unknown-task", predict_input("in.txt", "a\n", "--tasks", "weather"),
         ("unknown task(s) weather", "topic")),
    Case("predict-output-is-a-folder", predict_input("in.txt", "a\n", "--output", "{tmp}"),
         ("{tmp}: cannot write",)),
    # serve options
    Case("serve-without-extra", serve_without_extra, ("install infomtl[serve]",)),
    Case("serve-max-texts-zero", serve("--max-texts", "0"), ("--max-texts", "got 0")),
    Case("serve-port-out-of-range", serve("--port", "70000"), ("--port must be in 0..65535",)),
    Case("serve-missing-run", lambda env: ["serve", str(env.tmp / "none")], ("{tmp}/none", "no such run")),
    # HTTP bodies of POST /predict (limits: HTTP_LIMITS)
    Case("http-not-json", body(b"texts=a", 400), ("not valid JSON",)),
    Case("http-not-utf8", body(b'{"texts": ["\xff"]}', 400), ("not UTF-8",)),
    Case("http-texts-not-a-list", body({"texts": "a"}, 422), ('"texts" must be a list',)),
    Case("http-text-not-a-string", body({"texts": ["a", 1]}, 422), ("texts[1] must be a string",)),
    Case("http-no-texts", body({"texts": []}, 422), ('"texts" is empty',)),
    Case("http-too-many-texts", body({"texts": ["a"] * 5}, 422), ("at most 4", "--max-texts")),
    Case("http-text-too-long", body({"texts": ["a" * 51]}, 422), ("texts[0] has 51 characters", "--max-text-chars")),
    Case("http-unknown-task", body({"texts": ["a"], "tasks": ["weather"]}, 422), ("unknown task(s) 'weather'",)),
    Case("http-unknown-key", body({"text": ["a"]}, 422), ("unknown key 'text'",)),
    Case("http-empty-text", body({"texts": ["a", "  "]}, 422), ("texts[1] is empty",)),
]


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``infomtl.cli.main(argv)`` (argparse errors exit)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "infomtl", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, tmp_path, request, monkeypatch, capsys) -> None:
    monkeypatch.delenv("INFOMTL_DATA", raising=False)  # no data found anywhere but where named
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = Env(tmp_path, request, monkeypatch)
    made = case.build(env)
    says = [s.format(tmp=tmp_path) for s in case.says]
    if isinstance(made, Body):
        with pytest.raises(RequestError) as info:
            parse_request(made.data, HTTP_LIMITS, HTTP_TASKS)
        assert info.value.status == made.status
        message = info.value.message
        assert "\n" not in message
        for words in says:
            assert words in message
        return
    argv = [a.format(tmp=tmp_path) for a in made]
    code, err = run_subprocess(argv, tmp_path) if case.subprocess else run_in_process(argv, capsys)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for words in says:
        assert words in lines[0]


def test_the_catalogue_covers_every_kind_of_input() -> None:
    kinds = {c.id.split("-")[0] for c in CASES}
    assert kinds == {"data", "config", "flag", "ckpt", "export", "predict", "serve", "http"}
    assert len(CASES) >= 24
    assert sum(c.subprocess for c in CASES) == 3
