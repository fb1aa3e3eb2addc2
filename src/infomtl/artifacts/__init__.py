"""Run folders: writing checkpoints and training states, rebuilding a trained run,
re-scoring it (:mod:`~infomtl.artifacts.run_folder`, :mod:`~infomtl.artifacts.checkpoint`,
:mod:`~infomtl.artifacts.evaluation`)."""
