import torch

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b
def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, img_feat_dim=1.0, torch.cuda.FloatTensor((a, b))

def ref_kernel_custom():
    def ref_kernel_custom(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
       
