"""Torch's own layers as their forward would run them: the class a module really is, weights
that hooks compute, and hooks a trace cannot see.

* ``torch.nn.utils.parametrize`` gives a parametrised module a generated class
  ``Parametrized<Cls>`` (a subclass of ``Cls``) that lives in torch's namespace.  ``own_class``
  is ``Cls``, the class the user wrote: a ``Conv1d`` subclass with its own ``forward`` stays a
  subclass (traced through), never a leaf rebuilt from its attributes.
* The old ``torch.nn.utils.weight_norm`` keeps ``weight`` as a plain attribute that a forward
  pre-hook recomputes, ``weight = g * v / ||v||`` (norm over every axis but ``dim``), before each
  call.  A stream never calls the module, so wherever the weight is read it is recomputed from
  ``weight_g`` and ``weight_v`` as the hook would (``live_weight``): training steps, ``.double()``
  and ``.to()`` reach the stream.
* Any other forward hook changes what the module does in a way the graph does not record:
  ``unseen_hooks`` names them and the converter refuses.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm


def own_class(m: nn.Module) -> type[nn.Module]:
    """The module's class, before ``parametrize`` swapped in its generated subclass."""
    cls = type(m)
    return cls.__bases__[0] if parametrize.is_parametrized(m) else cls


def is_torch_layer(m: nn.Module) -> bool:
    """Whether the module is one of torch's own layers (fx's leaf rule, on ``own_class``)."""
    cls = own_class(m)
    return cls.__module__.startswith(("torch.nn", "torch.ao.nn")) and \
        not issubclass(cls, nn.Sequential)


def runs_as(m: nn.Module, base: type[nn.Module]) -> bool:
    """Whether ``m`` is a ``base`` whose ``forward`` is ``base``'s own (not a subclass's)."""
    return isinstance(m, base) and own_class(m).forward is base.forward


def weight_norms(m: nn.Module) -> list[WeightNorm]:
    """The old-style weight-norm hooks of ``m`` (one per normalised parameter)."""
    return [h for h in m._forward_pre_hooks.values() if isinstance(h, WeightNorm)]


def live_weight(m: nn.Module, name: str = "weight") -> Any:
    """``m.<name>`` as ``m``'s forward would see it now."""
    for hook in weight_norms(m):
        if hook.name == name:
            return hook.compute_weight(m)
    return getattr(m, name)


def weight_norm_of(root: nn.Module, value: Tensor) -> tuple[str, WeightNorm] | None:
    """Where ``value`` is the stale ``weight`` attribute of an old-style weight-normalised
    module in ``root``: that module's path and its hook."""
    for path, m in root.named_modules():
        for hook in weight_norms(m):
            if m.__dict__.get(hook.name) is value:
                return path, hook
    return None


def unseen_hooks(m: nn.Module) -> str | None:
    """What hooks of ``m`` a traced graph would skip (None where there are none)."""
    found = [f"forward pre-hook {_name(h)}" for h in m._forward_pre_hooks.values()
             if not isinstance(h, WeightNorm)]
    found += [f"forward hook {_name(h)}" for h in m._forward_hooks.values()]
    return ", ".join(found) or None


def _name(hook: Any) -> str:
    return getattr(hook, "__name__", None) or type(hook).__name__


HOOK_WHY = "has a {} that the converted graph would not run (streams call ops, not modules)"
HOOK_FIX = ("apply what the hook does inside forward, or remove it; weight norm converts with "
            "either torch.nn.utils.weight_norm or torch.nn.utils.parametrizations.weight_norm")
