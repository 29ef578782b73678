from tl.voc.board_dataset.layers import NN_Layer

def custom_kernel(data):
    a, b = data
    return a + b

def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK=1024):
    a = NN_Layer([a_ptr], [b_ptr])
    add_kernel([(a_ptr + NN_Layer([a_ptr], [b_ptr])), n])
    return out
