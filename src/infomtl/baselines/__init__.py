"""Baselines scored without training: the zero-shot LLM baseline (``infomtl baseline llm``).

``config`` (the options, no torch) → ``zero_shot`` (the run) → ``questions`` (a task's
question per row), ``answers`` (a reply read as a prediction), ``cache`` (every answer on
disk), and the two models: ``chat_api`` (an OpenAI-compatible endpoint) and ``local_lm``
(a local Hugging Face causal LM).
"""
