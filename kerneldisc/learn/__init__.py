"""Learning from rewards: group advantages (and, beside them, the LoRA policy-gradient step)."""

from kerneldisc.learn.entropic import entropic_advantages, kl_from_uniform, mean_baseline_advantages

__all__ = ["entropic_advantages", "kl_from_uniform", "mean_baseline_advantages"]
