"""mksgn: spiking graph convolutional networks from snnTorch training to a Lava (Loihi 2) target."""

__version__ = "0.1.0"
