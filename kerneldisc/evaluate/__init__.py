"""The sandboxed evaluator: judges a candidate kernel against a task's reference.

    from kerneldisc.evaluate import evaluate, measure_reference, Verdict, EvalConfig

See docs/evaluator.md for the protocol and the threat model.
"""

from kerneldisc.evaluate.api import evaluate, measure_reference
from kerneldisc.evaluate.config import EvalConfig
from kerneldisc.evaluate.verdict import ReferenceTiming, Verdict

__all__ = ["EvalConfig", "ReferenceTiming", "Verdict", "evaluate", "measure_reference"]
