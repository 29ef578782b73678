"""The seal over the harness's code in the candidate's process: every way of changing what a
sealed name runs is noticed, and what is legitimately new (names added later) is not."""

from __future__ import annotations

import types

import pytest

from kerneldisc.evaluate.guards import Guards
from kerneldisc.evaluate.seal import Seal

SOURCE = """
LIMIT = 0.025

def helper(x):
    return x + 1

def make_counter():
    step = 1
    def count(x):
        return x + step
    return count

counter = make_counter()

class Timer:
    unit = "us"
    def time_call(self, fn, data):
        return fn(data), 1.0
    @staticmethod
    def scale(x):
        return x
"""


@pytest.fixture()
def module() -> types.ModuleType:
    mod = types.ModuleType("sealed_example")
    exec(compile(SOURCE, "sealed_example.py", "exec"), vars(mod))
    return mod


@pytest.fixture()
def seal(module) -> Seal:
    s = Seal()
    s.add_module(module)
    assert s.broken() == []
    return s


def test_a_rebound_function_or_constant_is_named(module, seal):
    module.helper = lambda x: x
    module.LIMIT = 0.0
    assert seal.broken() == ["sealed_example.LIMIT", "sealed_example.helper"]


def test_rewritten_code_and_defaults_are_noticed(module, seal):
    module.helper.__code__ = (lambda x: 0).__code__
    module.Timer.time_call.__defaults__ = (None,)
    assert seal.broken() == ["sealed_example.helper.__code__", "sealed_example.Timer.time_call.__defaults__"]


def test_a_closure_cell_swapped_in_place_is_noticed(module, seal):
    module.counter.__closure__[0].cell_contents = 100
    assert seal.broken() == ["sealed_example.counter (closure 0)"]


def test_class_members_replaced_or_deleted_are_noticed(module, seal):
    module.Timer.time_call = lambda self, fn, data: (fn(data), 0.0)
    del module.Timer.scale
    module.Timer.unit = "ns"
    assert sorted(seal.broken()) == [
        "sealed_example.Timer.scale", "sealed_example.Timer.time_call", "sealed_example.Timer.unit",
    ]  # fmt: skip


def test_names_added_later_are_not_a_change(module, seal):
    module.new_helper = lambda: None
    module.Timer.extra = 1
    assert seal.broken() == []


def test_a_member_overridden_on_a_sealed_subclass_is_noticed():
    class Base:
        def run(self):
            return 1

    class Child(Base):
        pass

    s = Seal()
    s.add_public(Child, "Child")
    Child.run = lambda self: 2  # shadows the inherited member without touching Base
    assert s.broken() == ["Child.run"]


def test_attributes_of_a_live_object_are_sealed_except_the_skipped(seal):
    class Session:
        def __init__(self):
            self.kernel, self.scratch = print, []

    session = Session()
    s = Seal()
    s.add_object("session", session, skip=("scratch",))
    session.scratch = [1]
    assert s.broken() == []
    session.kernel = len
    assert s.broken() == ["session.kernel"]


def test_guards_report_a_broken_seal_and_check_the_wide_one_only_when_asked(module, seal):
    wide = Seal()
    wide.add_public(module.Timer, "Timer")
    guards = Guards.capture(cuda=False)
    guards.seal, guards.wide_seal = Seal(), wide
    module.Timer.scale = staticmethod(lambda x: 0)
    assert guards.violation(wide=False) is None
    message = guards.violation()
    assert message.startswith("candidate changed code the evaluator runs in its process: Timer.scale")


def test_torchs_own_dynamo_wrapper_is_tolerated_and_a_lookalike_is_not():
    import functools

    import torch

    def generator(n):
        return n

    namespace = {"__name__": "fake_torch", "manual_seed": generator}
    s = Seal(wrapper_codes=[torch._disable_dynamo(len).__code__])
    s.add_namespace(namespace, "torch")
    namespace["manual_seed"] = torch._disable_dynamo(generator)  # what importing torch._dynamo does
    assert s.broken() == []
    namespace["manual_seed"] = torch._disable_dynamo(lambda n: 0)  # the same wrapper of another function
    assert s.broken() == ["torch.manual_seed"]
    namespace["manual_seed"] = functools.wraps(generator)(lambda n: 0)  # claims to wrap it
    assert s.broken() == ["torch.manual_seed"]
