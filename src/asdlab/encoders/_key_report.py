"""Name-and-shape comparison of checkpoint tensors against a model, and the `CheckpointError` text listing
the missing, unexpected and mis-shaped keys (STYLE.md "Models"); shared by every checkpoint converter."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor, nn

__all__ = ["state_shapes", "compare_shapes", "problems_message"]


def state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of `module` with its shape (works on the meta device)."""
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def compare_shapes(
    expected: Mapping[str, tuple[int, ...]],
    provided: Mapping[str, Tensor],
    name: Callable[[str], str],
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) lines; `name(key)` spells a key as the file does."""
    missing = [f"{name(k)} {list(s)}" for k, s in expected.items() if k not in provided]
    unexpected = [f"{name(k)} {list(v.shape)}" for k, v in provided.items() if k not in expected]
    misshaped = [
        f"{name(k)}: file {list(v.shape)}, model {list(expected[k])}"
        for k, v in provided.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    return missing, unexpected, misshaped


def problems_message(header: str, missing: list[str], unexpected: list[str], misshaped: list[str], *,
                     limit: int = 25) -> str:
    """`header`, then the non-empty lists, each with its count and at most `limit` lines."""
    lines = [header]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            lines.append(f"  {title} ({len(items)}):")
            lines += [f"    {item}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"    ... and {len(items) - limit} more")
    return "\n".join(lines)
