"""Applications: a trained model plus one part, used in one call; no training, no file writing."""
