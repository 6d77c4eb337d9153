"""Applications: a trained model and a part, used in one call (no training, no file writing)."""
