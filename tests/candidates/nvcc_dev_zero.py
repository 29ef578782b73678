"""A CUDA C++ extension whose source includes /dev/zero: on a machine without a GPU the sources are
compiled with nvcc, whose preprocessor would read an endless file."""

from torch.utils.cpp_extension import load_inline

_cuda = '#include "/dev/zero"\n__global__ void k() {}\n'
_module = load_inline(name="zero", cpp_sources="", cuda_sources=_cuda, functions=[])


def custom_kernel(data):
    a, b = data
    return a + b
