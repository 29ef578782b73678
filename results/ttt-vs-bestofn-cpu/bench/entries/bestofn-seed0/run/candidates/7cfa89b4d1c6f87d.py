# Custom kernel that uses the same memory as the original `custom_kernel`
def custom_kernel(data):
    a = torch.ones(len(data))
    b = a  # Don't modify the inputs.
    b = a.masked_fill_traits(0)  # Mask the inputs to get the outputs
    a = torch.ones(len(data))  # Mask the inputs to get the outputs

    def add_kernel(a, b):
        return a + b

    return custom_kernel(data)

# Write the original function
def custom_kernel(data):
