"""Returns a view of one of its inputs (writing nothing): an output that lives in the inputs'
memory, which the judge never accepts, whatever it holds."""


def custom_kernel(data):
    a, b = data
    return b.view(-1)[:]
