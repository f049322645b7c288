"""Networks, their weight loaders and the shipped default model."""
