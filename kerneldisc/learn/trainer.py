"""The LoRA policy-gradient step of TTT-Discover.

For completion token t of sample i (prompt tokens are masked out):

    loss = - sum_i sum_t exp(log pi(t) - log q(t)) * A_t
    A_t  = A_i + kl_coef * (mean(Delta) - Delta_t),   Delta_t = log q(t) - log p_base(t)

`q` is the sampling distribution (the log-probabilities the policy returned), `pi` the trained model
and `p_base` the same model with the adapter disabled; both are evaluated at the sampling temperature
so that the ratio is exactly 1 for on-policy samples. The mean of Delta runs over all completion tokens
of the step. As published: no ratio clipping, no length normalisation, one Adam step per call; long
steps are split into micro-batches by a token budget and their gradients accumulated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.utils.checkpoint

from kerneldisc.atomic import existing_dir, replace_dir
from kerneldisc.errors import ConfigError
from kerneldisc.peft_compat import quiet_peft
from kerneldisc.policy.base import Completion
from kerneldisc.policy.models import default_dtype, load_causal_lm

if TYPE_CHECKING:
    from kerneldisc.rollout import Rollout

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LOGIT_CHUNK = 1024  # completion positions per pass of the output head (vocabulary-wide logits)
# Padded tokens per micro-batch from which "auto" recomputes activations: on a GPU memory is what
# runs out; on a CPU recomputation costs more time (measured 2.4x on SmolLM2) than memory is worth.
CHECKPOINT_FROM_TOKENS = {"cuda": 2048, "cpu": 16384}


@dataclass
class TrainerConfig:
    lora_rank: int = 32
    lora_alpha: float | None = None  # None: equal to the rank (LoRA scale 1)
    # "all-linear": every linear layer but the output head, i.e. the attention and MLP projections.
    target_modules: str | list[str] = "all-linear"
    lr: float = 4e-5
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    kl_coef: float = 0.1  # lambda; 0 skips the base-model pass
    temperature: float = 1.0  # must equal the sampling temperature
    token_budget: int = 8192  # padded tokens (prompt + completion) per micro-batch
    device: str = "cpu"
    dtype: str | None = None  # None: bf16 on a GPU, fp32 on the CPU
    seed: int = 0  # LoRA initialisation
    # Recompute each layer's activations in the backward pass instead of keeping them: "auto" does
    # so for micro-batches of CHECKPOINT_FROM_TOKENS padded tokens or more, where they dominate memory.
    gradient_checkpointing: bool | str = "auto"

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # YAML and JSON give lists
        if self.lora_rank < 1:
            raise ConfigError(f"lora_rank must be at least 1, got {self.lora_rank}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.token_budget < 1:
            raise ConfigError(f"token_budget must be positive, got {self.token_budget}")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef must be non-negative, got {self.kl_coef}")

    def torch_dtype(self) -> torch.dtype:
        if self.dtype is None:
            return default_dtype(self.device)
        try:
            return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
                self.dtype
            ]
        except KeyError:
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}") from None


@dataclass
class _Item:
    """One sample as tensors: the full sequence, where its completion starts, q and the advantage."""

    ids: list[int]
    start: int  # index of the first completion token in ids
    q: torch.Tensor
    advantage: float
    token_adv: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    @property
    def n_completion(self) -> int:
        return len(self.ids) - self.start


class Trainer:
    """LoRA (peft) on a Hugging Face causal LM, trained by the importance-weighted policy gradient."""

    def __init__(self, model_dir: str | Path, cfg: TrainerConfig | None = None) -> None:
        from peft import LoraConfig, get_peft_model

        self.cfg = cfg or TrainerConfig()
        self.model_dir = Path(model_dir)
        self.device = self.cfg.device
        base, self.tokenizer = load_causal_lm(self.model_dir, "cpu", self.cfg.torch_dtype())
        lora = LoraConfig(
            r=self.cfg.lora_rank,
            lora_alpha=self.cfg.lora_alpha if self.cfg.lora_alpha is not None else self.cfg.lora_rank,
            target_modules=self.cfg.target_modules,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        # The LoRA A matrices are random: a private seed keeps them reproducible without touching the
        # caller's RNG. peft keeps adapter weights in fp32 even on a bf16 base, so Adam's small steps
        # are not rounded away.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            with quiet_peft():
                self.model = get_peft_model(base, lora)
        self.model.to(self.device)
        self.model.eval()  # no dropout anywhere: training and sampling see the same function
        self.optimizer = torch.optim.Adam(
            self.lora_parameters(), lr=self.cfg.lr, betas=self.cfg.betas, eps=self.cfg.eps
        )
        self.step_count = 0
        self.adapter_path: Path | None = None
        self._scratch: Path | None = None

    # --- the step -------------------------------------------------------------------------------

    def step(self, rollouts: list[Rollout]) -> dict[str, Any]:
        """One optimizer step on `rollouts`, each pushed by its `advantage`. Returns the step's
        statistics."""
        t0 = time.perf_counter()
        self.to(self.cfg.device)
        items = [self._item(r.completion, r.advantage) for r in rollouts]
        items = [it for it in items if it.n_completion > 0]
        if not items:
            raise ValueError("a trainer step needs at least one rollout with completion tokens")
        batches = self._micro_batches(items)

        kl = 0.0
        for it in items:
            it.token_adv = torch.full_like(it.q, it.advantage)
        if self.cfg.kl_coef > 0:
            deltas = []
            with torch.no_grad(), self.model.disable_adapter():
                for batch in batches:
                    for it, base_lp in zip(batch, self._logprobs(batch), strict=True):
                        deltas.append((it, it.q - base_lp.float()))
            mean_delta = torch.cat([d for _, d in deltas]).mean()
            for it, delta in deltas:
                it.token_adv = it.advantage + self.cfg.kl_coef * (mean_delta - delta)
            kl = float(mean_delta)

        total_loss, ratio_sum, ratio_max, tokens = 0.0, 0.0, 0.0, 0
        for batch in batches:
            loss = torch.zeros((), device=self.device)
            with self._checkpointing(len(batch) * max(len(it.ids) for it in batch)):
                for it, lp in zip(batch, self._logprobs(batch), strict=True):
                    ratio = torch.exp(lp.float() - it.q)
                    loss = loss - (ratio * it.token_adv).sum()
                    ratio_sum += float(ratio.detach().sum())
                    ratio_max = max(ratio_max, float(ratio.detach().max()))
                    tokens += it.n_completion
                loss.backward()  # gradients accumulate across micro-batches
            total_loss += float(loss.detach())

        grads = [p.grad.float().norm() for p in self.lora_parameters() if p.grad is not None]
        grad_norm = (
            float(torch.stack(grads).norm()) if grads else 0.0
        )  # reported, never clipped (as published)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        return {
            "step": self.step_count,
            "loss": total_loss,
            "kl": kl,
            "tokens": tokens,
            "samples": len(items),
            "micro_batches": len(batches),
            "ratio_mean": ratio_sum / tokens,
            "ratio_max": ratio_max,
            "grad_norm": grad_norm,
            "seconds": time.perf_counter() - t0,
        }

    @contextlib.contextmanager
    def _checkpointing(self, padded_tokens: int):
        """Gradient checkpointing for one micro-batch where it pays. transformers recomputes layers
        only in training mode; dropout stays off (every Dropout module in eval mode), so the
        function trained is the one sampled."""
        wanted = self.cfg.gradient_checkpointing
        threshold = CHECKPOINT_FROM_TOKENS["cuda" if str(self.device).startswith("cuda") else "cpu"]
        on = padded_tokens >= threshold if wanted == "auto" else bool(wanted)
        if not on or not getattr(self.model, "supports_gradient_checkpointing", True):
            yield
            return
        # transformers 5 renamed it (the old name still works, with a warning)
        if hasattr(self.model, "activation_checkpointing_enable"):
            self.model.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )
            disable = self.model.activation_checkpointing_disable
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            disable = self.model.gradient_checkpointing_disable
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        try:
            yield
        finally:
            self.model.eval()
            disable()

    def logprobs(self, completions: list[Completion]) -> list[list[float]]:
        """log pi(t) of each completion token under the current adapter, at the training temperature."""
        self.to(self.cfg.device)
        items = [self._item(c, 0.0) for c in completions]
        out: dict[int, list[float]] = {}
        with torch.no_grad():
            for batch in self._micro_batches(items):
                for it, lp in zip(batch, self._logprobs(batch), strict=True):
                    out[id(it)] = lp.float().tolist()
        return [out[id(it)] for it in items]

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _item(self, completion: Completion | None, advantage: float | None) -> _Item:
        # Each of these is a caller's mistake (the configuration already refuses training on
        # endpoints that give no token ids), not something a user can fix: ValueError.
        if completion is None or advantage is None:
            raise ValueError("a rollout to train on needs its completion and its advantage")
        if completion.token_ids and not completion.prompt_token_ids:
            raise ValueError("a completion to train on needs its prompt token ids (got none)")
        if not completion.token_ids and completion.text:
            raise ValueError(
                "a completion without token ids cannot be trained on (an OpenAI-compatible endpoint "
                "gives none): sample with the hf or vllm policy, or run without training"
            )
        if len(completion.logprobs) != len(completion.token_ids):
            raise ValueError(
                f"a completion has {len(completion.token_ids)} tokens but {len(completion.logprobs)} log-probabilities"
            )
        return _Item(
            ids=list(completion.prompt_token_ids) + list(completion.token_ids),
            start=len(completion.prompt_token_ids),
            q=torch.tensor(completion.logprobs, dtype=torch.float32, device=self.device),
            advantage=float(advantage),
        )

    def _micro_batches(self, items: list[_Item]) -> list[list[_Item]]:
        """Group sequences so that (count x longest length) stays within the token budget; a sequence
        longer than the budget goes alone. Longest first, so similar lengths share a batch."""
        batches: list[list[_Item]] = []
        current: list[_Item] = []
        for it in sorted(items, key=lambda it: len(it.ids), reverse=True):
            longest = len(current[0].ids) if current else len(it.ids)
            if current and (len(current) + 1) * longest > self.cfg.token_budget:
                batches.append(current)
                current = []
            current.append(it)
        if current:
            batches.append(current)
        return batches

    def _logprobs(self, batch: list[_Item]) -> list[torch.Tensor]:
        """Per item, log-probabilities of its completion tokens (grad flows where enabled).

        The backbone runs over prompt and completion; the output head only at the positions that
        predict completion tokens, LOGIT_CHUNK of them at a time, each chunk recomputed in the
        backward pass instead of kept: memory grows with completion tokens, never with prompt
        length times vocabulary (`benchmarks/trainer_speed.py`)."""
        pad = self.tokenizer.pad_token_id
        width = max(len(it.ids) for it in batch)
        # Right padding: causal attention never lets a real token see a pad after it, and positions
        # start at 0 as in generation.
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, it in enumerate(batch):
            ids[b, : len(it.ids)] = torch.tensor(it.ids)
            mask[b, : len(it.ids)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        causal_lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        backbone = getattr(causal_lm, causal_lm.base_model_prefix)
        hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        rows = torch.cat([torch.full((it.n_completion,), b) for b, it in enumerate(batch)]).to(self.device)
        cols = torch.cat([torch.arange(it.start, len(it.ids)) for it in batch]).to(self.device)
        states, targets = hidden[rows, cols - 1], ids[rows, cols]
        head = _HeadLogprobs(causal_lm, self.cfg.temperature)
        chunks = []
        for h, t in zip(states.split(LOGIT_CHUNK), targets.split(LOGIT_CHUNK), strict=True):
            if torch.is_grad_enabled():
                chunks.append(torch.utils.checkpoint.checkpoint(head, h, t, use_reentrant=False))
            else:
                chunks.append(head(h, t))
        token_lp = torch.cat(chunks) if chunks else states.new_zeros(0)
        return list(token_lp.split([it.n_completion for it in batch]))

    # --- checkpoints ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Adapter, optimizer state and step count into `path`, atomically (a tmp folder renamed)."""
        path = Path(path)

        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp)
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "step_count": self.step_count,
                    "config": asdict(self.cfg),
                },
                tmp / STATE_FILE,
            )

        replace_dir(path, write)
        self.adapter_path = path
        return path

    def save_adapter_for_sampling(self) -> Path:
        """The current adapter alone, in a fresh folder per step (a sampler may still read the last
        one); the previous folder is removed. Returns the folder, also kept as `adapter_path`."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="kerneldisc-adapter-"))
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
        path = self._scratch / f"step-{self.step_count}"
        replace_dir(path, self.model.save_pretrained)
        for old in self._scratch.glob("step-*"):  # every earlier one (save() moves adapter_path)
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
        self.adapter_path = path
        return path

    @classmethod
    def load(cls, model_dir: str | Path, path: str | Path, cfg: TrainerConfig | None = None) -> Trainer:
        """A trainer resumed from `save(path)`: same adapter weights, optimizer state and step count."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        cfg = cfg or TrainerConfig()
        path = existing_dir(Path(path))
        for name in ("adapter_config.json", ADAPTER_WEIGHTS, STATE_FILE):
            if not (path / name).is_file():
                raise ConfigError(f"{path} is not a trainer checkpoint: {name} is missing")
        saved_rank = json.loads((path / "adapter_config.json").read_text()).get("r")
        if saved_rank != cfg.lora_rank:
            raise ConfigError(
                f"the adapter in {path} has LoRA rank {saved_rank} but the configuration asks for "
                f"{cfg.lora_rank}: set lora_rank to {saved_rank} to resume"
            )
        trainer = cls(model_dir, cfg)
        result = set_peft_model_state_dict(
            trainer.model, load_file(path / ADAPTER_WEIGHTS, device=trainer.device)
        )
        if result.unexpected_keys:
            raise ConfigError(
                f"the adapter in {path} does not fit the model in {model_dir}: unexpected weights "
                f"{result.unexpected_keys[:3]}"
            )
        state = torch.load(path / STATE_FILE, map_location=trainer.device, weights_only=True)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step_count = int(state["step_count"])
        trainer.adapter_path = path
        return trainer

    # --- sharing one GPU ------------------------------------------------------------------------

    def release(self) -> None:
        """Move weights and optimizer state to the CPU and free accelerator memory; `step` and
        `logprobs` move them back."""
        self.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def to(self, device: str) -> Trainer:
        if device == self.device:
            return self
        self.model.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0:  # Adam's scalar step stays put
                    state[key] = value.to(device)
        self.device = device
        return self


class _HeadLogprobs:
    """log softmax(head(h) / T)[target] for a chunk of positions, in fp32 (the model's own final
    logit soft-capping applied, where it has one)."""

    def __init__(self, causal_lm, temperature: float) -> None:
        self.head = causal_lm.get_output_embeddings()
        self.cap = getattr(causal_lm.config, "final_logit_softcapping", None)
        self.temperature = temperature

    def __call__(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.head(states).float()
        if self.cap:
            logits = self.cap * torch.tanh(logits / self.cap)
        logits = logits / self.temperature
        return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=1)
