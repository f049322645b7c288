"""torchvision Mask R-CNN family: published configs, a slim config of our own, a backend."""
