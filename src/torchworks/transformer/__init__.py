"""Transformers: GPT, encoder-decoder translation, BERT, ViT, generation."""
