"""Weightings: how a method combines the task losses (or their gradients) into one step,
one method per module; :mod:`~infomtl.methods.weightings.common` holds what they share."""
