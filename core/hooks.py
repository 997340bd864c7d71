"""sae-lens hook names mapped onto a transformers decoder's modules.

``blocks.L.hook_resid_post`` is the output of ``layers[L]`` (= ``hidden_states[L+1]``),
``hook_resid_pre`` its input (= ``hidden_states[L]``), ``hook_mlp_out`` the output of its MLP and
``hook_mlp_in`` the MLP's input (the output of the norm before it — where transcoders read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from af_tasks.core.errors import AfError

HOOK_KINDS = ("hook_resid_pre", "hook_resid_post", "hook_mlp_in", "hook_mlp_out")
_HOOK = re.compile(r"^blocks\.(\d+)\.(" + "|".join(HOOK_KINDS) + r")$")
_SPARSIFY = re.compile(r"^(?:model\.)?layers\.(\d+)$")


class HookError(AfError, ValueError):
    """A hook name that cannot be placed on the model; raised before any forward pass."""


@dataclass(frozen=True, order=True)
class HookPoint:
    layer: int
    kind: str

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.{self.kind}"

    @property
    def last_layer_needed(self) -> int:
        """The deepest decoder layer whose computation this hook needs."""
        return self.layer - 1 if self.kind == "hook_resid_pre" else self.layer


def parse_hook(name: str) -> HookPoint:
    """Accepts sae-lens names and sparsify's ``layers.L`` (= resid_post of layer L)."""
    if match := _HOOK.match(name.strip()):
        return HookPoint(int(match.group(1)), match.group(2))
    if match := _SPARSIFY.match(name.strip()):
        return HookPoint(int(match.group(1)), "hook_resid_post")
    raise HookError(f"unknown hook name {name!r}; expected blocks.<L>.<{'|'.join(HOOK_KINDS)}> or layers.<L>")


def decoder_layers(model):
    """The decoder's layer list, through a peft wrapper if there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else getattr(inner, "model", inner)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise HookError(f"{type(inner).__name__} has no decoder layer list to hook")
    return layers


def check_hook(hook: HookPoint, num_layers: int, model_name: str) -> None:
    if not 0 <= hook.layer < num_layers:
        raise HookError(f"hook {hook.name} is outside {model_name}, which has layers 0..{num_layers - 1}")
