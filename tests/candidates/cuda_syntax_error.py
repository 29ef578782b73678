"""CUDA C++ through load_inline, with a type error in the CUDA source."""

from torch.utils.cpp_extension import load_inline

cuda_src = """
__global__ void add_kernel(const float* a, const float* b, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i]
}
"""

cpp_src = "torch::Tensor add(torch::Tensor a, torch::Tensor b);"

module = load_inline(name="add_bad", cpp_sources=cpp_src, cuda_sources=cuda_src, functions=["add"])


def custom_kernel(data):
    a, b = data
    return module.add(a, b)
