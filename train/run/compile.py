"""torch.compile for the training networks (python -m train --compile, train.bench)."""
import torch

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def default_mode(device: torch.device) -> str:
    """CUDA graphs on the GPU (they remove the per-kernel launch cost that dominates small
    batches); plain inductor code on the CPU, where graphs do not exist."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def compiler(mode: str):
    """A function compiling one network: whole graph (our fused ops trace without breaks)."""
    def compile_network(net):
        return torch.compile(net, fullgraph=True, mode=mode)
    return compile_network


def compile_recipe(recipe, mode, device):
    """torch.compile every network of `recipe` in `mode` (None: default_mode). Returns the
    function to call before each step (mark_step_begin under CUDA graphs), else None."""
    mode = mode or default_mode(device)
    recipe.wrap_networks(compiler(mode))
    return mark_step_begin if uses_cuda_graphs(mode, device) else None


def uses_cuda_graphs(mode: str, device: torch.device) -> bool:
    return device.type == "cuda" and mode in CUDA_GRAPH_MODES


def mark_step_begin():
    """Tell the CUDA-graph runtime a new iteration starts: the previous iteration's graph
    outputs may be overwritten from here on."""
    torch.compiler.cudagraph_mark_step_begin()
