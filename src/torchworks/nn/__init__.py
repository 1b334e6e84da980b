"""Reusable layers (attention, positional encodings, FFC, CBAM, recurrent). Imports core only."""
