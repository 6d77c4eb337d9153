"""Applications: what a trained autoencoder is used for, each a thin layer over the model (no training here)."""
