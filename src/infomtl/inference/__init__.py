"""Using trained models: the predictor (:mod:`~infomtl.inference.predict`), its input
and output formats, self-contained exports and the HTTP server."""
