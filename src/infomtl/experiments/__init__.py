"""Experiments: sweeps of training runs into a results store, and the papers' reports.

``report`` → ``report_analyses`` → ``results`` → ``store``; ``sweep`` → ``plan`` →
``store``; ``demo`` trains and reports the two-method demo.
"""
