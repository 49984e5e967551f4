"""What the benchmarks share: the machine they ran on and C references compiled at run time."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess


def cpu_info():
    """``(model, isa flags present, number of cores)`` from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        flags = set(m.group(1).split()) if m else set()
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl") if f in flags]
    return model, isa, len(os.sched_getaffinity(0))


def machine_line():
    """One line naming the CPU, its vector extensions, the cores and the load average."""
    model, isa, cores = cpu_info()
    return f"machine: {model}; {', '.join(isa) or 'no AVX2'}; {cores} cores; load {load():.2f}"


def load():
    """The 1-minute load average."""
    return os.getloadavg()[0]


def build_c(source, out_path, flags=()):
    """Compile a C source into a shared library with ``gcc -O3 -march=native``.

    Returns ``(path, None)``, or ``(None, why)`` without gcc, off x86-64 or when it fails.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found: the C reference is skipped"
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return None, f"the C reference needs x86-64 (this is {platform.machine()})"
    cmd = [gcc, "-O3", "-march=native", *flags, "-shared", "-fPIC", "-pthread", "-o", out_path]
    proc = subprocess.run([*cmd, source], capture_output=True, text=True)
    if proc.returncode:
        return None, f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}"
    return out_path, None
