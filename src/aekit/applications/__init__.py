"""Applications: a trained autoencoder plus one part, one call each; they return data, never write files."""
