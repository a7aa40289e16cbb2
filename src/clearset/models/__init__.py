"""Models: feature-extraction backbones (timm + offline ImageNet weights)."""
