"""Reading PyTorch checkpoints into numpy: a state_dict however it was saved, and alphas.

The files of the original release and its users: `torch.save(model.state_dict())`,
`{'state_dict': ..., 'epoch': ...}` (its ImageNet script), keys prefixed `module.` by
DataParallel, alphas beside the state_dict, in it (later ports), or in a file of their own.
Always `torch.load(weights_only=True)`: a checkpoint cannot run code.  torch is optional:
without it every reader raises a UserError saying how to install it.
"""

import os

import numpy as np

from ..errors import UserError

INSTALL_HINT = ("reading PyTorch checkpoints needs PyTorch: pip install torch==2.13.0 (the CPU "
                "build) or pip install darts-paddle[torch]")
ALPHA_KEYS = ("alphas_normal", "alphas_reduce")
ALPHAS_HINT = ("save them from the search with torch.save(model.arch_parameters(), "
               "'alphas.pt') and pass --alphas alphas.pt (or a .npy of shape [2, 14, 8], or a "
               ".npz with alphas_normal and alphas_reduce)")


def import_torch():
    try:
        import torch
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return torch


def _to_numpy(tensor):
    import torch

    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # half / bfloat16 checkpoints
    return tensor.detach().cpu().numpy()


def _torch_load(path):
    torch = import_torch()
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist; pass the .pt / .pth file the PyTorch run saved")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or pickled content
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {path} as a PyTorch checkpoint of weights ({detail}); if "
                        "it holds a whole pickled model, re-save it with "
                        "torch.save(model.state_dict(), 'weights.pt')") from None


def _tensors(obj, torch):
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def read_torch_checkpoint(path):
    """-> ({key: float array} without 'module.' prefixes and num_batches_tracked, extras).

    extras: the checkpoint's other top-level numbers (epoch, best_acc_top1) and any alphas
    stored next to the state_dict."""
    torch = import_torch()
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state_dict; save "
                        "model.state_dict() (or {'state_dict': ...})")
    extras = {k: v for k, v in obj.items() if isinstance(v, (int, float)) and not
              isinstance(v, bool)}
    inner = next((obj[k] for k in ("state_dict", "model_state_dict", "model")
                  if isinstance(obj.get(k), dict)), obj)
    state = _tensors(inner, torch)
    if inner is not obj:  # alphas kept beside the state_dict
        state.update({k: v for k, v in _tensors(obj, torch).items() if k in ALPHA_KEYS})
    if not state:
        raise UserError(f"{path} holds no tensors; pass a checkpoint saved from "
                        "model.state_dict()")
    if all(k.startswith("module.") for k in state):  # DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return ({k: _to_numpy(v) for k, v in state.items()
             if not k.endswith("num_batches_tracked")}, extras)


def read_alphas(path):
    """{alphas_normal, alphas_reduce} from a .pt (dict or [normal, reduce]), .npy or .npz."""
    if path.endswith((".npy", ".npz")):
        if not os.path.isfile(path):
            raise UserError(f"--alphas {path} does not exist")
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"--alphas {path} is unreadable ({exc})") from None
        if path.endswith(".npz"):
            found = {k: loaded[k] for k in ALPHA_KEYS if k in loaded.files}
        else:
            found = dict(zip(ALPHA_KEYS, loaded)) if loaded.ndim == 3 and len(loaded) == 2 else {}
    else:
        torch = import_torch()
        obj = _torch_load(path)
        if isinstance(obj, (list, tuple)) and len(obj) == 2:  # model.arch_parameters()
            obj = dict(zip(ALPHA_KEYS, obj))
        found = ({k: _to_numpy(v) for k, v in obj.items()
                  if k in ALPHA_KEYS and isinstance(v, torch.Tensor)}
                 if isinstance(obj, dict) else {})
    if set(found) != set(ALPHA_KEYS):
        raise UserError(f"--alphas {path} does not hold alphas_normal and alphas_reduce; "
                        + ALPHAS_HINT)
    return found
