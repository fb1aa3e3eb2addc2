"""Objectives: the heads of a method and the terms of its loss, one method per module."""
