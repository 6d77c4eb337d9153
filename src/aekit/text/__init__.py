"""Sentences: corpora, subword tokenizers, token batches, sequence models and decoding."""
