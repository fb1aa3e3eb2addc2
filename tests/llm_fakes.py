"""Stand-ins for language models in tests: a chat-completions server on 127.0.0.1 (in a
thread) whose every reply a test scripts, and a tiny random causal LM built in code."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    """One scripted HTTP reply: status, headers, body (a dict is sent as JSON) and a delay before it."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str | None) -> dict[str, Any]:
    """A chat-completions reply body holding ``content``."""
    return {"id": "x", "object": "chat.completion", "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


@dataclass
class ChatStub:
    """The server's state: what it received, and the script of its replies.

    ``script(n, body)`` returns the :class:`Reply` to the n-th request (from 0) with the JSON
    ``body``; by default every request is answered ``answer(question text)``.
    """

    answer: Callable[[str], str] = lambda text: "joy"
    script: Callable[[int, dict[str, Any]], Reply] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def reply(self, n: int, body: dict[str, Any]) -> Reply:
        if self.script is not None:
            return self.script(n, body)
        return Reply(body=completion(self.answer(question(body))))

    def questions(self) -> list[str]:
        """The question text of every request received, in order."""
        with self.lock:
            return [question(b) for b in self.requests]


def question(body: dict[str, Any]) -> str:
    """The text of a request's (last) message."""
    return body["messages"][-1]["content"]


@contextmanager
def chat_server(stub: ChatStub) -> Iterator[ChatStub]:
    """Serve ``stub`` at ``http://127.0.0.1:PORT/v1`` (``stub.url``) while the block runs."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            body = json.loads(raw)
            with stub.lock:
                n = len(stub.requests)
                stub.requests.append(body)
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                stub.times.append(time.monotonic())
            if self.path != "/v1/chat/completions":
                reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
            else:
                reply = stub.reply(n, body)
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # many clients connecting at once (the default backlog is 5)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


#: A chat template in the manner of Hugging Face chat models (no system role needed).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_causal_lm(folder: Path, chat_template: bool = True, favour: str | None = None, seed: int = 0) -> Path:
    """Save a tiny random Llama (2 layers, width 32) and a word-level tokenizer built in code
    into ``folder``; ``favour`` makes that word the argmax of every step (a large bias on its
    output logit), so every reply is that word repeated."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from infomtl.modeling.backbones import tiny_vocab

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
    words = [w for w in tiny_vocab() if not w.startswith("[") and not w.startswith("##")]
    words += ["not", "ironic", "offensive", "hate", "optimism", "sadness", "anger", "positive", "negative",
              "neutral", "none", "against", "favor", "tweet", "answer", "with", "exactly", "one"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + words))}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins the words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", model_max_length=4096)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
                         tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    if favour is not None:  # every state the same positive vector, and only `favour` reads it
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            model.model.embed_tokens.weight.fill_(1.0)
            model.lm_head.weight.zero_()
            model.lm_head.weight[vocab[favour]] = 1.0
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
