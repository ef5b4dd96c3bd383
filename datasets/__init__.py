"""Readers of real formats, synthetic generators and torch Datasets."""
__all__ = []
