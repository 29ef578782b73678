def custom_kernel(input):
    result = 0
    for x in input:
        x = torch.tensor(x).dtype.new_like(int)
        result += x
    return result.dtype.new_like(float32)
