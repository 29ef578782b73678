# Your code here
