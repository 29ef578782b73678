"""A control group per harness process, where the judge may make one (root, cgroup v1 or v2).

What the kernel then counts for the group is exact and covers every process that ever ran in
it: CPU time to the nanosecond (v1 cpuacct.usage) or microsecond (v2 cpu.stat), children that
were forked and reaped between two reads included — /proc's counters for reaped children move
in whole clock ticks, and a candidate that sets their phase can hide work below one tick. On
the CPU the group's memory is capped too, which also bounds what no address-space limit sees
(tmpfs files, System V shared memory, pages of files it writes), and its process count.

The harness process is moved into its group by the judge before it runs anything of the
candidate's; its threads and children inherit the group and cannot leave it (the group's files
are root's). Where no group can be made, the judge falls back to /proc (controller.py).

    group = HarnessGroup.create("1234-candidate", memory_mb=4096)   # None where unavailable
    group.add(pid); group.cpu_ns(); group.remove()
"""

from __future__ import annotations

import os
import time

ROOT = "/sys/fs/cgroup"
PARENT = "kerneldisc"
MAX_PROCESSES = 512
# Above the candidate's own limit: page cache and kernel memory are charged to the group too.
MEMORY_HEADROOM_MB = 1024


class HarnessGroup:
    def __init__(self, paths: dict[str, str], v2: bool) -> None:
        self.paths = paths  # controller -> folder (v1), or {"": folder} (v2)
        self.v2 = v2

    @classmethod
    def create(cls, name: str, memory_mb: int | None) -> HarnessGroup | None:
        if os.geteuid() != 0:
            return None
        try:
            if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
                return cls._create_v2(name, memory_mb)
            return cls._create_v1(name, memory_mb)
        except OSError:
            return None

    @classmethod
    def _create_v1(cls, name: str, memory_mb: int | None) -> HarnessGroup | None:
        wanted = {"cpuacct": True, "memory": memory_mb is not None, "pids": True}
        paths: dict[str, str] = {}
        for controller, needed in wanted.items():
            if not needed:
                continue
            base = os.path.join(ROOT, controller)
            if not os.path.isdir(base):
                if controller == "cpuacct":
                    return None  # without exact CPU time the group is not worth having
                continue
            parent = os.path.join(base, PARENT)
            os.makedirs(parent, 0o755, exist_ok=True)
            _sweep(parent)
            folder = os.path.join(parent, name)
            os.mkdir(folder, 0o755)
            paths[controller] = folder
        group = cls(paths, v2=False)
        if "memory" in paths and memory_mb is not None:
            _write(
                os.path.join(paths["memory"], "memory.limit_in_bytes"),
                str((memory_mb + MEMORY_HEADROOM_MB) << 20),
            )
        if "pids" in paths:
            _write(os.path.join(paths["pids"], "pids.max"), str(MAX_PROCESSES))
        return group

    @classmethod
    def _create_v2(cls, name: str, memory_mb: int | None) -> HarnessGroup | None:
        parent = os.path.join(ROOT, PARENT)
        os.makedirs(parent, 0o755, exist_ok=True)
        with open(os.path.join(ROOT, "cgroup.subtree_control")) as f:
            enabled = set(f.read().split())
        with open(os.path.join(ROOT, "cgroup.controllers")) as f:
            available = set(f.read().split())
        for controller in ("cpu", "memory", "pids"):
            if controller in available and controller not in enabled:
                _write(os.path.join(ROOT, "cgroup.subtree_control"), f"+{controller}")
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            here = set(f.read().split())
        for controller in ("cpu", "memory", "pids"):
            if controller in here:
                _write(os.path.join(parent, "cgroup.subtree_control"), f"+{controller}")
        _sweep(parent)
        folder = os.path.join(parent, name)
        os.mkdir(folder, 0o755)
        if memory_mb is not None and os.path.exists(os.path.join(folder, "memory.max")):
            _write(os.path.join(folder, "memory.max"), str((memory_mb + MEMORY_HEADROOM_MB) << 20))
        if os.path.exists(os.path.join(folder, "pids.max")):
            _write(os.path.join(folder, "pids.max"), str(MAX_PROCESSES))
        return cls({"": folder}, v2=True)

    def add(self, pid: int) -> None:
        for folder in self.paths.values():
            _write(os.path.join(folder, "cgroup.procs"), str(pid))

    def cpu_ns(self) -> int:
        """CPU time of every process that has run in the group, living or reaped."""
        if self.v2:
            with open(os.path.join(self.paths[""], "cpu.stat"), "rb") as f:
                for line in f:
                    if line.startswith(b"usage_usec "):
                        return int(line.split()[1]) * 1000
            raise OSError("cpu.stat has no usage_usec")
        with open(os.path.join(self.paths["cpuacct"], "cpuacct.usage"), "rb") as f:
            return int(f.read())

    def out_of_memory(self) -> bool:
        """Whether the group hit its memory cap (the kernel then killed a process of it)."""
        try:
            if self.v2:
                with open(os.path.join(self.paths[""], "memory.events"), "rb") as f:
                    return any(line.startswith(b"oom_kill ") and int(line.split()[1]) > 0 for line in f)
            if "memory" in self.paths:
                with open(os.path.join(self.paths["memory"], "memory.oom_control"), "rb") as f:
                    return any(line.startswith(b"oom_kill ") and int(line.split()[1]) > 0 for line in f)
        except (OSError, ValueError):
            pass
        return False

    def remove(self, wait_s: float = 2.0) -> None:
        """Remove the group's folders once its processes are gone (they have just been killed)."""
        deadline = time.monotonic() + wait_s
        for folder in self.paths.values():
            while True:
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _sweep(parent: str) -> None:
    """Remove groups left by judges that died before their clean-up (named `<judge pid>-…`)."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for name in entries:
        pid = name.partition("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass
