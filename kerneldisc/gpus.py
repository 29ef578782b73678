"""Which GPUs each role of a one-node run uses: sampling, training, evaluation.

`--gpus` takes either a plain list ("0,1,2": kerneldisc splits it) or explicit roles
("sample=0;train=0;eval=1,2"). With one GPU every role shares it and the loop takes turns:
the sampler and trainer release their memory before evaluators time anything there.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerneldisc.errors import ConfigError

ROLES = ("sample", "train", "eval")


@dataclass(frozen=True)
class GpuRoles:
    sample: tuple[int, ...]
    train: tuple[int, ...]
    eval: tuple[int, ...]

    @property
    def eval_shares_gpu(self) -> bool:
        """True when an evaluation GPU also holds the sampler or the trainer."""
        return bool(set(self.eval) & (set(self.sample) | set(self.train)))

    def describe(self) -> str:
        return "; ".join(f"{r}=" + ",".join(map(str, getattr(self, r))) for r in ROLES)


def parse_gpus(text: str | None, available: int) -> GpuRoles | None:
    """None when there is no GPU to use (CPU run)."""
    if available <= 0:
        if text:
            raise ConfigError(f"--gpus {text!r} given but no CUDA GPU is visible")
        return None
    if not text:
        return split_gpus(tuple(range(available)))
    text = text.replace(" ", "")
    if "=" not in text:
        return split_gpus(_ids(text, available, "--gpus"))
    roles: dict[str, tuple[int, ...]] = {}
    for part in filter(None, text.split(";")):
        role, _, ids = part.partition("=")
        if role not in ROLES:
            raise ConfigError(f"--gpus: unknown role {role!r} (roles: {', '.join(ROLES)})")
        roles[role] = _ids(ids, available, f"--gpus {role}")
    missing = [r for r in ROLES if r not in roles]
    if missing:
        raise ConfigError(f"--gpus: no GPU given for {', '.join(missing)} (example: sample=0;train=0;eval=1)")
    return GpuRoles(**roles)


def split_gpus(ids: tuple[int, ...]) -> GpuRoles:
    """One GPU: all roles share it. Two: generation and training on the first, evaluation on
    the second. More: sampler, trainer, then every remaining GPU evaluates."""
    if len(ids) == 1:
        return GpuRoles(ids, ids, ids)
    if len(ids) == 2:
        return GpuRoles(ids[:1], ids[:1], ids[1:])
    return GpuRoles(ids[:1], ids[1:2], ids[2:])


def _ids(text: str, available: int, where: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(x) for x in text.split(",") if x != "")
    except ValueError:
        raise ConfigError(f"{where}: expected GPU numbers like 0,1 — got {text!r}") from None
    if not ids:
        raise ConfigError(f"{where}: no GPU numbers given")
    bad = [i for i in ids if not 0 <= i < available]
    if bad:
        raise ConfigError(f"{where}: GPU {bad[0]} does not exist ({available} visible: 0..{available - 1})")
    return ids
