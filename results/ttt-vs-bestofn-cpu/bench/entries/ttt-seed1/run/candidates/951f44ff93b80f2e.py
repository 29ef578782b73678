def ref_kernel(data: torch.Tensor) -> torch.Tensor:
    output_tensor = torch.empty_like(data)
    a = data[0]
    for i, b in enumerate(data):
        output_tensor = a + b

    return output_tensor
