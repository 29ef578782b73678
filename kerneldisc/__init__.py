"""kerneldisc: discover fast GPU kernels by test-time reinforcement learning (TTT-Discover)."""

__version__ = "0.1.0"
