"""gpu_check.sh section "env": versions, the device, its measured matmul peaks, the attention kernels SDPA can use.

Writes one {"kind": "env", ...} JSON line to `--json` and the measured bf16 peak (TFLOP/s) to `--peak-file`,
which the later sections take MFU against.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
from pathlib import Path

import torch
from dap_throughput import matmul_peak_tflops  # benchmarks/ is on sys.path when run as a script


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "present")
    except Exception as error:  # a missing or broken optional package
        return f"missing ({type(error).__name__})"


def _sdpa_backends(device: torch.device, shapes: dict[str, tuple[int, int, int, int]]) -> dict[str, dict[str, bool]]:
    """Which SDPA kernels accept EAT's bf16 attention shapes (forward + backward), tried one by one."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    found: dict[str, dict[str, bool]] = {}
    for label, shape in shapes.items():
        found[label] = {}
        q = torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True)
        for name, backend in backends.items():
            try:
                with sdpa_kernel([backend]):
                    torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
                found[label][name] = True
            except Exception:  # not available for this shape / dtype / device
                found[label][name] = False
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", required=True)
    parser.add_argument("--peak-file", required=True)
    parser.add_argument("--peak-size", type=int, default=8192)
    args = parser.parse_args()
    device = torch.device(args.device)
    record = {
        "kind": "env", "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "lightning": _version("lightning"), "soundfile": _version("soundfile"), "soxr": _version("soxr"),
        "pytest": _version("pytest"), "numpy": _version("numpy"), "cpus": __import__("os").cpu_count(),
    }
    if device.type == "cuda":
        record["device"] = torch.cuda.get_device_name(device)
        record["device_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(2)
        record["device"] = f"cpu ({torch.get_num_threads()} threads)"
    record["peak_bf16_tflops"] = matmul_peak_tflops(device, torch.bfloat16, size=args.peak_size)
    record["peak_fp32_tflops"] = matmul_peak_tflops(device, torch.float32, size=args.peak_size)  # TF32 on a GPU
    if device.type == "cuda":
        # EAT-base: student 512 views x 12 heads x (102 kept + CLS) tokens; teacher 32 x 12 x 513.
        record["sdpa"] = _sdpa_backends(device, {"student (512, 12, 103, 64)": (512, 12, 103, 64),
                                                 "teacher (32, 12, 513, 64)": (32, 12, 513, 64)})
    for key, value in record.items():
        print(f"{key:22s} {value}")
    with open(args.json, "a") as f:
        f.write(json.dumps(record) + "\n")
    Path(args.peak_file).write_text(f"{record['peak_bf16_tflops']:.6g}\n")


if __name__ == "__main__":
    main()
