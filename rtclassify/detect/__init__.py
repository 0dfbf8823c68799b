"""Decoding model outputs and tracker states into events."""
